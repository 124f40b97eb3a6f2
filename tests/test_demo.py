"""The demo: leaderboard (closed-form runs said so), and the picture of one user's history and picks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from modalrec.data.demo_shop import ShopConfig
from modalrec.demo import COLUMNS, PICTURE_FILE, Column, LeaderboardRow, format_leaderboard, run_demo

TINY = ShopConfig(num_items=60, num_users=40, seed=1, max_user_interactions=12, mean_extra_interactions=2.0,
                  image_extractor="handcrafted", text_extractor="tfidf")


def test_demo_prints_a_leaderboard_and_draws_a_picture(tmp_path: Path) -> None:
    report = run_demo(tmp_path, ["popularity", "BPR"], shop=TINY, overrides=["epochs=2", "progress=false"])
    lines = report.splitlines()
    rows = {line.split()[0]: line for line in lines if line.split()[:1] in (["popularity"], ["bpr"])}
    assert rows["popularity"].endswith("closed form") and rows["bpr"].split()[-1] in ("0", "1")
    assert f"popularity: run folder {tmp_path / 'runs' / 'popularity'}" in lines  # no plot for a closed form
    assert not (tmp_path / "runs" / "popularity" / "training.png").exists()
    picture_line = next(line for line in lines if line.startswith("picture: "))
    assert picture_line.startswith(f"picture: {tmp_path / PICTURE_FILE} (a user's history and ")
    with Image.open(tmp_path / PICTURE_FILE) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 250
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # item pictures, not an empty canvas


def test_a_leaderboard_column_is_one_entry(tmp_path: Path) -> None:
    row = LeaderboardRow("vbpr", {"recall@20": 0.3, "ndcg@20": 0.2}, 0.5, 12.0, 9, False, tmp_path,
                         extra={"warm recall@20": 0.25})
    columns = [*COLUMNS, Column("warm recall@20", 14, lambda r: f"{r.extra['warm recall@20']:.4f}")]
    table = format_leaderboard([row, dataclasses.replace(row, model="lens", closed_form=True)], tmp_path, columns)
    header, _, first, second = table.splitlines()[2:6]
    assert header.split()[-2:] == ["warm", "recall@20"]
    # best_epoch 9 is the tenth epoch: the leaderboard counts from 1, as the progress lines do
    assert first.split()[-2:] == ["10", "0.2500"] and second.split()[-3:] == ["closed", "form", "0.2500"]


def test_the_leaderboard_says_the_chance_level_of_cold_recall(tmp_path: Path) -> None:
    row = LeaderboardRow("bpr", {"recall@20": 0.3, "ndcg@20": 0.2}, 0.62, 5.0, 9, False, tmp_path)
    assert "ranked among the 32 cold items only: ranking them at random gives about 0.62." in \
        format_leaderboard([row], tmp_path, cold_count=32)
    assert "at random" not in format_leaderboard([row], tmp_path)


def test_long_titles_are_cut_to_two_lines_that_fit_a_tile() -> None:
    from PIL import Image, ImageDraw

    from modalrec.serve.picture import TILE, _caption, _font

    draw, font = ImageDraw.Draw(Image.new("RGB", (10, 10))), _font(12)
    caption = _caption("An extraordinarily long product title that never ends at all", draw, font)
    lines = caption.splitlines()
    assert len(lines) == 2 and lines[1].endswith("…")
    assert all(draw.textlength(line, font=font) <= TILE - 4 for line in lines)
    assert _caption("Mug", draw, font) == "Mug"
