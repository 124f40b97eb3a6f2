"""``modalrec data build`` and ``modalrec features extract``: layout, manifest, robustness, atomic replacement."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modalrec.cli.build_cmd import add_build_parser, add_extract_parser, parse_settings
from modalrec.cli.main import main as modalrec_main
from modalrec.data.build import (
    BuildOptions,
    ModalitySpec,
    TableColumns,
    build_dataset,
    join_text,
    read_raw_tables,
)
from modalrec.data.readers import load_dataset
from modalrec.errors import ConfigError, DataFormatError, ModalrecError
from tests.features.test_video_audio import write_video

FAST = {"image": "handcrafted", "text": "tfidf", "video": "frames", "audio": "logmel"}
COLOURS = {"A": (220, 30, 30), "B": (30, 200, 40), "C": (40, 40, 220), "D": (230, 200, 30), "E": (120, 30, 160)}


def _picture(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((48, 48, 3), 235, np.uint8)
    pixels[12:36, 12:36] = colour
    Image.fromarray(pixels).save(path)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    """A raw shop: five clean items with a picture and a text, and interactions of four users."""
    raw = tmp_path / "raw"
    raw.mkdir()
    items = []
    for item, colour in COLOURS.items():
        _picture(raw / "images" / f"{item}.png", colour)
        items.append({"item_id": item, "title": f"{item} thing", "description": f"a lovely {item} object",
                      "image": f"images/{item}.png"})
    _write_csv(raw / "items.csv", items)
    interactions = [{"user_id": f"u{u}", "item_id": item, "rating": 1 + (u + n) % 5, "timestamp": 1000 + 10 * u + n}
                    for u in range(4) for n, item in enumerate("ABCDE") if (u + n) % 3]
    _write_csv(raw / "interactions.csv", interactions)
    return raw


def _specs(*modalities: str, image_col: str = "image", text_cols: tuple[str, ...] = ("title", "description"),
           video_col: str = "video") -> list[ModalitySpec]:
    columns = {"image": (image_col,), "text": text_cols, "video": (video_col,), "audio": (video_col,)}
    return [ModalitySpec(m, columns[m], FAST[m]) for m in modalities]


def _build(raw: Path, out: Path, *modalities: str, options: BuildOptions = BuildOptions(progress=False), **kw: str):
    dataset = read_raw_tables(raw / "interactions.csv", raw / "items.csv")
    return build_dataset(dataset, _specs(*modalities, **kw), out, options)


def _problems(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "problems.csv", dtype=str, keep_default_na=False)


def test_build_writes_an_mmrec_folder_the_reader_loads(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "built"
    report = _build(shop, out, "image", "text")
    assert sorted(p.name for p in out.iterdir()) == [
        "built.inter", "i_id_mapping.csv", "image_feat.npy", "image_missing.npy", "manifest.json",
        "problems.csv", "text_feat.npy", "text_missing.npy", "u_id_mapping.csv",
    ]
    dataset = load_dataset(out)
    assert list(dataset.item_ids.external) == list("ABCDE")
    assert list(dataset.user_ids.external) == ["u0", "u1", "u2", "u3"]
    raw = pd.read_csv(shop / "interactions.csv", dtype=str)
    assert list(dataset.user_ids.external[dataset.users]) == raw["user_id"].tolist()
    assert list(dataset.item_ids.external[dataset.items]) == raw["item_id"].tolist()
    np.testing.assert_array_equal(dataset.ratings, raw["rating"].astype(float))
    assert dataset.labels is None  # no split column: the reader splits at random
    assert dataset.features["image"].values.shape == (5, 462)
    assert not dataset.features["image"].missing.any()
    assert report.counts == {"users": 4, "items": 5, "interactions": len(raw), "items_in_items_file": 5,
                             "duplicate_item_rows": 0, "items_not_in_items_file": 0, "interactions_unknown_item": 0,
                             "problems": 0}
    assert "problems: none" in report.summary()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_manifest_records_extractors_settings_versions_and_counts(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "built"
    _build(shop, out, "image", "text", options=BuildOptions(progress=False, cache_dir=tmp_path / "cache"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["builder"] == "modalrec data build" and manifest["split"] == "none"
    assert set(manifest["files"]) == {p.name for p in out.iterdir()}
    assert manifest["versions"]["modalrec"] and manifest["versions"]["torch"]
    image = manifest["modalities"]["image"]
    assert image["extractor"] == "handcrafted" and image["columns"] == ["image"] and image["dim"] == 462
    assert image["settings"]["name"] == "handcrafted" and "config" in image["settings"]
    assert image["versions"]["Pillow"] and image["counts"] == {"computed": 5, "cached": 0, "missing": 0}
    assert image["items_per_second"] > 0 and image["device"] == "cpu"
    assert manifest["modalities"]["text"]["columns"] == ["title", "description"]

    again = _build(shop, out, "image", "text", options=BuildOptions(progress=False, cache_dir=tmp_path / "cache"))
    assert [(m.result.computed, m.result.cached) for m in again.modalities] == [(0, 5), (0, 5)]


def test_text_columns_are_joined_with_their_names() -> None:
    assert join_text(("title", "description"), ["Red mug", "A mug."]) == "title: Red mug. description: A mug."
    assert join_text(("title", "description"), ["Red mug", ""]) == "title: Red mug."
    assert join_text(("title",), ["Red mug. Nice."]) == "Red mug. Nice."
    assert join_text(("title", "year"), ["", ""]) == ""


def test_bad_content_is_reported_and_filled(shop: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    _picture(outside, (1, 2, 3))
    (shop / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (shop / "images" / "zero.png").write_bytes(b"")
    (shop / "images" / "words.png").write_text("this is text, not a picture")
    (shop / "images" / "link.png").symlink_to(outside)
    rows = pd.read_csv(shop / "items.csv", dtype=str).to_dict("records")
    bad = {
        "F": "images/nothing-here.png", "G": "images/corrupt.png", "H": "images/zero.png", "I": "images/words.png",
        "J": "../secret.png", "K": str(outside), "L": "images/link.png", "M": "https://example.com/m.jpg", "N": "",
    }
    rows += [{"item_id": item, "title": f"{item} thing", "description": "", "image": path} for item, path in bad.items()]
    rows.append({"item_id": "A", "title": "a repeat", "description": "", "image": "images/B.png"})
    rows.append({"item_id": "O", "title": "", "description": "", "image": "images/A.png"})
    _write_csv(shop / "items.csv", rows)
    interactions = pd.read_csv(shop / "interactions.csv", dtype=str)
    extra = pd.DataFrame([{"user_id": "u9", "item_id": "Z", "rating": "4", "timestamp": "5000"}])
    _write_csv(shop / "interactions.csv", pd.concat([interactions, extra]).to_dict("records"))

    out = tmp_path / "built"
    report = _build(shop, out, "image", "text")
    problems = _problems(out)
    kinds = {(row.item_id, row.modality): row.kind for row in problems.itertuples()}
    assert kinds == {
        ("F", "image"): "missing-file", ("G", "image"): "unreadable", ("H", "image"): "empty-file",
        ("I", "image"): "unreadable", ("J", "image"): "outside", ("K", "image"): "outside",
        ("L", "image"): "outside", ("M", "image"): "url", ("N", "image"): "no-content",
        ("A", "items"): "duplicate-id", ("O", "text"): "no-content", ("Z", "items"): "not-in-items-file",
    }
    assert problems.set_index("item_id").loc["G", "file"].endswith("corrupt.png")
    assert "line 16" in problems.set_index("item_id").loc["A", "reason"]  # header + 5 + 9 rows, then the repeat
    dataset = load_dataset(out)
    ids = list(dataset.item_ids.external)
    assert ids == [*"ABCDE", *bad, "O", "Z"]
    image_missing = dict(zip(ids, dataset.features["image"].missing))
    assert [i for i, m in image_missing.items() if m] == [*bad, "Z"]
    text_missing = dict(zip(ids, dataset.features["text"].missing))
    assert [i for i, m in text_missing.items() if m] == ["O", "Z"]
    image = dataset.features["image"].values
    np.testing.assert_allclose(image[ids.index("Z")], image[~dataset.features["image"].missing].mean(axis=0),
                               rtol=1e-5)
    first_a = _build(shop, tmp_path / "only-a", "image")  # the repeated A keeps its first picture (images/A.png)
    np.testing.assert_array_equal(np.load(tmp_path / "only-a" / "image_feat.npy")[0], image[0])
    assert first_a.counts["duplicate_item_rows"] == 1
    assert report.counts["interactions_unknown_item"] == 1 and report.counts["items_not_in_items_file"] == 1
    summary = report.summary()
    assert "1 interactions name 1 item(s) absent" in summary and "image outside 3" in summary

    allowed = _build(shop, tmp_path / "allowed", "image", options=BuildOptions(progress=False, allow_outside=True))
    missing = set(_problems(tmp_path / "allowed").item_id)
    assert {"J", "K", "L"}.isdisjoint(missing) and allowed.modalities[0].missing == 7


def test_video_and_its_sound_track_from_one_column(shop: Path, tmp_path: Path) -> None:
    (shop / "clips").mkdir()
    write_video(shop / "clips" / "A.mp4", tone=440.0)
    write_video(shop / "clips" / "B.mp4", moving=False, tone=None)
    rows = pd.read_csv(shop / "items.csv", dtype=str).to_dict("records")
    for row in rows:
        row["video"] = {"A": "clips/A.mp4", "B": "clips/B.mp4"}.get(row["item_id"], "")
    _write_csv(shop / "items.csv", rows)
    out = tmp_path / "built"
    report = _build(shop, out, "video", "audio")
    assert np.load(out / "video_feat.npy").shape == (5, 2 * 462 + 3)
    assert np.load(out / "audio_feat.npy").shape == (5, 168)
    np.testing.assert_array_equal(np.load(out / "video_missing.npy"), [False, False, True, True, True])
    np.testing.assert_array_equal(np.load(out / "audio_missing.npy"), [False, True, True, True, True])
    silent = _problems(out).query("item_id == 'B' and modality == 'audio'")
    assert silent.kind.tolist() == ["unreadable"] and "no audio stream" in silent.reason.iloc[0]
    assert [m.spec.modality for m in report.modalities] == ["video", "audio"]


def test_given_split_and_date_timestamps_are_kept(shop: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(shop / "interactions.csv", dtype=str)
    frame["x_label"] = [n % 3 for n in range(len(frame))]
    frame["timestamp"] = "2016-03-09 00:00:10"
    _write_csv(shop / "interactions.csv", frame.to_dict("records"))
    out = tmp_path / "built"
    report = _build(shop, out, "image")
    inter = pd.read_csv(out / "built.inter", sep="\t")
    assert list(inter.columns) == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert inter["timestamp"].eq(1457481610).all() and inter["x_label"].tolist() == frame["x_label"].tolist()
    assert report.manifest["split"] == "given" and report.counts["test"] == int((frame["x_label"] == 2).sum())
    assert load_dataset(out).labels is not None

    frame["x_label"] = 7
    _write_csv(shop / "interactions.csv", frame.to_dict("records"))
    with pytest.raises(DataFormatError, match=r"interactions.csv:2: column 'x_label': expected 0 \(train\)"):
        _build(shop, tmp_path / "bad", "image")


def test_custom_column_names(shop: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(shop / "interactions.csv", dtype=str).rename(columns={"user_id": "who", "item_id": "sku"})
    _write_csv(shop / "interactions.csv", frame.to_dict("records"))
    items = pd.read_csv(shop / "items.csv", dtype=str).rename(columns={"item_id": "sku"})
    _write_csv(shop / "items.csv", items.to_dict("records"))
    raw = read_raw_tables(shop / "interactions.csv", shop / "items.csv", TableColumns(user_col="who", item_col="sku"))
    build_dataset(raw, _specs("image"), tmp_path / "built", BuildOptions(progress=False))
    assert list(load_dataset(tmp_path / "built").item_ids.external) == list("ABCDE")
    with pytest.raises(DataFormatError, match="missing column"):
        read_raw_tables(shop / "interactions.csv", shop / "items.csv")


def test_replaces_an_earlier_build_only_when_complete(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "built"
    _build(shop, out, "image")
    before = (out / "image_feat.npy").read_bytes()
    with pytest.raises(DataFormatError, match="no item has usable content"):
        _build(shop, out, "image", image_col="title")  # every "path" is missing: the build fails
    assert (out / "image_feat.npy").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "raw"]

    _build(shop, out, "image", "text")  # an earlier build is replaced without --overwrite
    assert (out / "text_feat.npy").is_file()

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(ModalrecError, match="--overwrite"):
        _build(shop, precious, "image")
    assert (precious / "thesis.tex").is_file()
    _build(shop, precious, "image", options=BuildOptions(progress=False, overwrite=True))
    assert not (precious / "thesis.tex").exists() and (precious / "precious.inter").is_file()
    for holding_inputs in (shop, tmp_path):
        with pytest.raises(ModalrecError, match="holds the input"):
            _build(shop, holding_inputs, "image", options=BuildOptions(progress=False, overwrite=True))
    assert (shop / "items.csv").is_file()


def test_specs_are_checked_before_any_work(shop: Path, tmp_path: Path) -> None:
    raw = read_raw_tables(shop / "interactions.csv", shop / "items.csv")
    with pytest.raises(ConfigError, match="is a text extractor"):
        build_dataset(raw, [ModalitySpec("image", ("image",), "tfidf")], tmp_path / "x")
    with pytest.raises(DataFormatError, match="missing column"):
        build_dataset(raw, [ModalitySpec("image", ("picture",), "handcrafted")], tmp_path / "x")
    with pytest.raises(ConfigError, match="expected one column"):
        build_dataset(raw, [ModalitySpec("image", ("image", "title"), "handcrafted")], tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- the command line --------------------------------------------------------------------------------

def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="modalrec")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_parser(sub.add_parser("data").add_subparsers(dest="data_command", required=True))
    add_extract_parser(sub.add_parser("features").add_subparsers(dest="features_command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_build_then_train(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "built"
    code = _cli(["data", "build", "--interactions", str(shop / "interactions.csv"), "--items",
                 str(shop / "items.csv"), "--out", str(out), "--image-col", "image", "--text-cols",
                 "title,description", "--image-extractor", "handcrafted", "--text-extractor", "tfidf",
                 "--set", "text.dim=3", "--set", "image.image_size=32", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"built {out}: 4 users, 5 items" in printed and "tfidf" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["modalities"]["text"]["settings"]["config"]["dim"] == 3
    assert manifest["modalities"]["image"]["settings"]["config"]["image_size"] == 32
    run = tmp_path / "run"
    assert modalrec_main(["train", "--data", str(out), "--model", "vbpr", "--out", str(run), "--set", "epochs=2",
                          "--set", "progress=false", "--set", "batch_size=8"]) == 0
    assert (run / "metrics.json").is_file()


def test_cli_extract_writes_aligned_files(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = pd.read_csv(shop / "items.csv", dtype=str).to_dict("records")
    rows.append({"item_id": "F", "title": "F", "description": "", "image": "images/absent.png"})
    rows.append({"item_id": "B", "title": "B again", "description": "", "image": "images/A.png"})
    _write_csv(shop / "items.csv", rows)
    out = tmp_path / "feats" / "image.npy"
    assert _cli(["features", "extract", "--items", str(shop / "items.csv"), "--column", "image", "--extractor",
                 "handcrafted", "--out", str(out), "--device", "cpu", "--set", "image_size=32"]) == 0
    values = np.load(out)
    assert values.shape == (6, 462)
    assert (tmp_path / "feats" / "image.ids.txt").read_text().split() == [*"ABCDE", "F"]
    np.testing.assert_array_equal(np.load(tmp_path / "feats" / "image.missing.npy"), [False] * 5 + [True])
    printed = capsys.readouterr().out
    assert "missing 1" in printed and "duplicate-id 1" in printed and "missing-file 1" in printed
    with pytest.raises(ConfigError, match="reads one column"):
        _cli(["features", "extract", "--items", str(shop / "items.csv"), "--column", "image,title",
              "--extractor", "handcrafted", "--out", str(out)])


def test_parse_settings_nests_dotted_keys() -> None:
    parsed = parse_settings(["video.fps=2", "video.image_settings.image_size=32", "text.dim=8"],
                            ("image", "text", "video", "audio"))
    assert parsed == {"video": {"fps": "2", "image_settings": {"image_size": "32"}}, "text": {"dim": "8"}}
    assert parse_settings(["fps=2"], ()) == {"": {"fps": "2"}}
    for bad in (["fps=2"], ["speech.rate=2"], ["video.fps"]):
        with pytest.raises(ConfigError):
            parse_settings(bad, ("video",))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_inside_the_tree_is_fine(shop: Path, tmp_path: Path) -> None:
    (shop / "images" / "alias.png").symlink_to(shop / "images" / "A.png")
    rows = pd.read_csv(shop / "items.csv", dtype=str).to_dict("records")
    rows[1]["image"] = "images/alias.png"
    _write_csv(shop / "items.csv", rows)
    _build(shop, tmp_path / "built", "image")
    features = np.load(tmp_path / "built" / "image_feat.npy")
    np.testing.assert_array_equal(features[0], features[1])
