"""A picture a person can look at: one user's history and recommendations as a grid of item pictures.

Row one shows items the user interacted with in training, row two the model's top-k; a recommended item
the user really chose later (a test interaction) is framed in green. Items without a picture get a grey tile
with their id, so the grid also works for datasets with titles only.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modalrec.errors import ModalrecError
from modalrec.io_utils import write_bytes
from modalrec.serve.items import ContentSource, item_details
from modalrec.serve.recommend import recommend_for_users
from modalrec.train.run import LoadedRun

TILE = 120  # side of an item's picture, in pixels
CAPTION = 34  # room for two lines of title under each picture
LABEL = 150  # width of the row labels on the left
GAP = 8
HIT = (46, 160, 67)  # frame of a recommended item that is among the user's test items


def pick_user(run: LoadedRun, k: int) -> str:
    """The user whose top-k holds the most of their test items (the first such user on ties): a grid
    that shows the model getting something right. Falls back to the first user with any test item."""
    test = run.split.matrix("test")
    candidates = np.flatnonzero(np.diff(test.indptr) > 0)[:2000]  # bounded: the demo has 2,500 users
    if not len(candidates):
        raise ModalrecError("picture: the run has no user with a test interaction")
    ids = [str(run.dataset.user_ids.external[u]) for u in candidates]
    top = recommend_for_users(run, ids, k)
    users = run.dataset.user_ids.indices_of(top["user_id"].astype(str).tolist())
    items = run.dataset.item_ids.indices_of(top["item_id"].astype(str).tolist())
    hit = np.asarray(test[users, items]).ravel() != 0
    position = np.searchsorted(candidates, users)  # candidates are sorted
    hits = np.bincount(position, weights=hit, minlength=len(candidates))
    return ids[int(np.argmax(hits))]  # argmax keeps the first of equals


def recommendation_picture(run: LoadedRun, source: ContentSource, out: str | Path, *, user: str | None = None,
                           k: int = 8, history: int = 8) -> Path:
    """Draw ``user``'s (default: :func:`pick_user`) last ``history`` training items and top-``k``
    recommendations into a PNG at ``out``; returns its path."""
    user = user if user is not None else pick_user(run, k)
    row = int(run.dataset.user_ids.indices_of([user], kind="user id")[0])
    external = run.dataset.item_ids.external.astype(str)
    train, test = run.split.matrix("train"), run.split.matrix("test")
    seen = [str(external[i]) for i in train[row].indices[-history:]]
    wanted = {str(external[i]) for i in test[row].indices}
    recommended = [str(i) for i in recommend_for_users(run, [user], k)["item_id"]]
    details = item_details(source, seen + recommended)
    titles: dict[str, str | None] = dict(zip(details.index, details["title"], strict=True))
    pictures: dict[str, str | None] = dict(zip(details.index, details["image"], strict=True))
    width = LABEL + max(len(seen), len(recommended), 1) * (TILE + GAP) + GAP
    height = 2 * (TILE + CAPTION + GAP) + 3 * GAP + 22
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    rows = [(f"user {user}\nhistory\n(training)", seen), (f"top {k} by\n{run.config.model_name}", recommended)]
    for number, (label, items) in enumerate(rows):
        top = GAP + number * (TILE + CAPTION + GAP)
        draw.multiline_text((GAP, top + TILE // 3), label, fill="black", font=_font(14))
        for column, item in enumerate(items):
            left = LABEL + column * (TILE + GAP)
            canvas.paste(_tile(pictures[item], item), (left, top))
            if number == 1 and item in wanted:
                draw.rectangle((left - 3, top - 3, left + TILE + 2, top + TILE + 2), outline=HIT, width=4)
            title = titles[item] or item
            draw.multiline_text((left, top + TILE + 3), _caption(str(title), draw, font), fill="black", font=font)
    note = "green frame: recommended, and the user chose it later (held-out test interaction)"
    draw.text((GAP, height - 20), note, fill=HIT, font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    write_bytes(out, buffer.getvalue())
    return Path(out)


def _caption(title: str, draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """``title`` in at most two lines that each fit under a tile (the second cut with an ellipsis)."""
    lines: list[str] = []
    words = title.split()
    while words and len(lines) < 2:
        line = words.pop(0)
        while words and draw.textlength(f"{line} {words[0]}", font=font) <= TILE - 4:
            line = f"{line} {words.pop(0)}"
        while draw.textlength(line, font=font) > TILE - 4 and len(line) > 1:
            line = line[:-2] + "…"
        lines.append(line)
    if words and lines:
        last = lines[-1]
        while draw.textlength(last + "…", font=font) > TILE - 4 and len(last) > 1:
            last = last[:-1]
        lines[-1] = last + "…"
    return "\n".join(lines)


def _tile(picture: str | None, item: str) -> Image.Image:
    if picture:
        try:
            with Image.open(picture) as image:
                return image.convert("RGB").resize((TILE, TILE))
        except (OSError, ValueError):
            pass
    tile = Image.new("RGB", (TILE, TILE), (225, 225, 225))
    ImageDraw.Draw(tile).text((8, TILE // 2 - 6), item[:18], fill="black", font=_font(12))
    return tile


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
