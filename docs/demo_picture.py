"""Draw a user's history and recommendations as a grid of item pictures: the README's picture.

    python docs/demo_picture.py RUN_DIR USER OUT.png [--count 8]

The top row is what the user interacted with in training, the bottom row the run's top recommendations,
each tile with the item's title (from the dataset's items table, through the public API).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

import modalrec

TILE = 96
CAPTION = 34
LABEL = 120
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)


def draw_grid(run: modalrec.Run, user: str, count: int) -> Image.Image:
    rows = [("history", run.interactions(user).head(count)), ("recommended", run.recommend(user, k=count))]
    grid = Image.new("RGB", (LABEL + count * TILE, len(rows) * (TILE + CAPTION)), BACKGROUND)
    pen = ImageDraw.Draw(grid)
    for row, (label, items) in enumerate(rows):
        top = row * (TILE + CAPTION)
        pen.text((8, top + TILE // 2), f"{user}\n{label}", fill=INK)
        for column, item in enumerate(items.itertuples()):
            left = LABEL + column * TILE
            picture = getattr(item, "picture", None)
            if picture and Path(picture).is_file():
                with Image.open(picture) as image:
                    grid.paste(image.convert("RGB").resize((TILE - 8, TILE - 8)), (left + 4, top + 4))
            caption = "\n".join(textwrap.wrap(str(getattr(item, "title", "") or item.item_id), 15)[:2])
            pen.text((left + 4, top + TILE), caption, fill=INK)
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder")
    parser.add_argument("user", help="user id")
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--count", type=int, default=8, help="items per row (default 8)")
    args = parser.parse_args()
    draw_grid(modalrec.load_run(args.run), args.user, args.count).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
