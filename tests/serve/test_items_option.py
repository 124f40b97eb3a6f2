"""--items ITEMS.csv: titles and pictures for a run whose dataset has none (an MMRec-layout folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalrec.cli.main import main
from modalrec.errors import ModalrecError
from modalrec.serve.items import check_items_cover, item_details, items_file_source

FAST = ["--set", "epochs=2", "--set", "progress=false", "--set", "batch_size=64"]


@pytest.fixture()
def vbpr_run(tiny_mmrec: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "vbpr", "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture()
def items_csv(tmp_path: Path) -> Path:
    folder = tmp_path / "catalogue"
    (folder / "pics").mkdir(parents=True)
    Image.new("RGB", (4, 4), "red").save(folder / "pics" / "0.png")
    rows = [f"{i},Item number {i},pics/{i}.png" for i in range(12)]  # only item 0 has its picture on disk
    (folder / "items.csv").write_text("item_id,title,image\n" + "\n".join(rows) + "\n")
    return folder / "items.csv"


def test_recommend_adds_titles_and_pictures(vbpr_run: Path, items_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(vbpr_run), "--user", "0", "1", "-k", "12", "--items", str(items_csv),
                 "--out", str(out)]) == 0
    import pandas as pd

    rows = pd.read_csv(out, dtype=str)
    assert {"title", "picture"} <= set(rows.columns)
    assert (rows["title"] == "Item number " + rows["item_id"]).all()
    with_picture = rows.dropna(subset=["picture"])
    assert set(with_picture["item_id"]) <= {"0"}  # a picture that is not on disk is not claimed
    assert all(Path(p).is_file() for p in with_picture["picture"])


def test_explain_shows_titles(vbpr_run: Path, items_csv: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", "--run", str(vbpr_run), "--user", "0", "-k", "3", "--items", str(items_csv)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("title") and all("Item number" in line for line in lines[2:])
    assert main(["explain", "--run", str(vbpr_run), "--user", "0", "-k", "2", "--items", str(items_csv),
                 "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert all(entry["title"] == f"Item number {entry['item_id']}" for entry in described)


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"),
    ("item_id,price\n0,3\n", "no 'title' column; expected item_id,title[,image], found item_id, price"),
    ("id,title\n0,x\n", "no 'item_id' column"),
    ("item_id,title\nB001,Shoe\nB002,Hat\n", "none of the run's 12 item ids is in it (its first ids: B001, B002"),
])
def test_bad_items_file_is_one_clear_error(vbpr_run: Path, tmp_path: Path, content: str | None, message: str,
                                           capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "items.csv"
    if content is not None:
        path.write_text(content)
    assert main(["recommend", "--run", str(vbpr_run), "--user", "0", "--items", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modalrec: error: --items ") and message in err and len(err.splitlines()) == 1


def test_partial_coverage_warns_and_shows_ids(items_csv: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = items_file_source(items_csv)
    check_items_cover(source, np.array([str(i) for i in range(14)]))  # two items the table does not know
    assert "2 of the run's 14 items have no row there" in caplog.text
    details = item_details(source, ["13", "3"])
    assert details["title"].tolist() == [None, "Item number 3"]


def test_picture_outside_the_table_folder_is_never_given(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "items.csv").write_text(f"item_id,title,image\n0,A,../secret.png\n1,B,{secret}\n")
    details = item_details(items_file_source(folder / "items.csv"), ["0", "1"])
    assert details["image"].tolist() == [None, None]


def test_unknown_columns_are_fine_and_name_is_a_title(tmp_path: Path) -> None:
    path = tmp_path / "items.tsv"
    path.write_text("item_id\tname\tprice\n7\tLamp\t3\n")
    assert item_details(items_file_source(path), ["7"])["title"].tolist() == ["Lamp"]
    with pytest.raises(ModalrecError, match="file not found"):
        items_file_source(tmp_path / "nope.csv")
