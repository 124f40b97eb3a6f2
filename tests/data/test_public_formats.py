"""Readers of published raw formats (Amazon Reviews, Yelp, MovieLens), on small files written here."""

from __future__ import annotations

import argparse
import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modalrec.cli.build_cmd import add_build_parser
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset
from modalrec.data.public import iter_json_lines, read_amazon, read_movielens_raw, read_public, read_yelp
from modalrec.data.readers import ML100K_GENRES, load_dataset
from modalrec.errors import ConfigError, DataFormatError

SHARED_RAW = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ml100k-posters" / "raw"


def _picture(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)


def _lines(path: Path, records: list[object], *, compress: bool = False) -> Path:
    text = "".join(f"{record}\n" if isinstance(record, str) else json.dumps(record) + "\n" for record in records)
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# -- Amazon ------------------------------------------------------------------------------------------

@pytest.fixture()
def amazon(tmp_path: Path) -> dict[str, Path]:
    reviews = [
        {"reviewerID": "R1", "asin": "B001", "overall": 5.0, "unixReviewTime": 1388534400, "reviewText": "great"},
        {"reviewerID": "R1", "asin": "B002", "overall": 3.0, "unixReviewTime": 1388620800},
        {"reviewerID": "R2", "asin": "B002", "overall": 4.0, "unixReviewTime": 1388707200},
        {"reviewerID": "R2", "asin": "B003", "overall": 1.0, "unixReviewTime": 1388793600},
        {"reviewerID": "R3", "asin": "B001", "overall": 2.0, "unixReviewTime": 1388880000},
    ]
    metadata = [  # the 2014 dumps: Python literals, nested categories, imUrl
        "{'asin': 'B001', 'title': 'Soft blanket', 'description': 'Warm and soft.', "
        "'categories': [['Baby', 'Nursery'], ['Baby', 'Bedding']], 'imUrl': 'http://ecx.images/B001.jpg'}",
        # the 2018 dumps: JSON, description and category as lists, image URL lists
        {"asin": "B002", "title": "Bottle", "description": ["BPA free.", "Holds 250 ml."],
         "category": ["Baby", "Feeding"], "imageURLHighRes": ["https://images/B002.jpg"]},
        {"asin": "B003", "title": "Rattle"},
    ]
    images = tmp_path / "images"
    _picture(images / "B002.jpg", (200, 30, 30))
    _picture(images / "B003.jpg", (30, 30, 200))
    return {
        "reviews": _lines(tmp_path / "reviews_Baby_5.json.gz", reviews, compress=True),
        "meta": _lines(tmp_path / "meta_Baby.json", metadata),
        "images": images,
    }


def test_amazon_reviews_and_metadata(amazon: dict[str, Path]) -> None:
    raw = read_amazon(amazon["reviews"], amazon["meta"], images=amazon["images"])
    assert raw.interactions[["user_id", "item_id"]].values.tolist() == [
        ["R1", "B001"], ["R1", "B002"], ["R2", "B002"], ["R2", "B003"], ["R3", "B001"]]
    assert raw.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert raw.interactions["timestamp"].iloc[0] == 1388534400
    items = raw.items.set_index("item_id")
    assert items.loc["B001", "categories"] == "Baby, Nursery, Bedding"
    assert items.loc["B002", "description"] == "BPA free. Holds 250 ml."
    assert items.loc["B002", "categories"] == "Baby, Feeding"
    assert items.loc["B001", "image"] == "http://ecx.images/B001.jpg"  # no local file: the URL stays
    assert items.loc["B002", "image"] == str(amazon["images"] / "B002.jpg")  # a local file wins over the URL
    assert items.loc["B003", "description"] == "" and items.loc["B003", "image"].endswith("B003.jpg")
    assert raw.default_columns == {"image": ("image",), "text": ("title", "description", "categories")}


def test_a_python_literal_with_an_unknown_escape_is_read_without_warnings(tmp_path: Path) -> None:
    reviews = _lines(tmp_path / "reviews.json", [
        {"reviewerID": "R1", "asin": "B001", "overall": 5.0, "unixReviewTime": 1388534400}])
    meta = _lines(tmp_path / "meta.json", ["{'asin': 'B001', 'title': 'Soft \\e blanket'}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python warns about '\e' in a literal (a SyntaxWarning from 3.12)
        raw = read_amazon(reviews, meta)
    assert raw.items.set_index("item_id").loc["B001", "title"] == "Soft \\e blanket"


def test_amazon_build_reports_urls_as_missing(amazon: dict[str, Path], tmp_path: Path) -> None:
    raw = read_amazon(amazon["reviews"], amazon["meta"], images=amazon["images"])
    specs = [ModalitySpec("image", ("image",), "handcrafted"),
             ModalitySpec("text", ("title", "description", "categories"), "tfidf", {"dim": 2})]
    report = build_dataset(raw, specs, tmp_path / "baby", BuildOptions(progress=False))
    assert [(p.item_id, p.kind) for p in report.problems] == [("B001", "url")]
    dataset = load_dataset(tmp_path / "baby")
    assert list(dataset.item_ids.external) == ["B001", "B002", "B003"]
    np.testing.assert_array_equal(dataset.features["image"].missing, [True, False, False])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"reviewerID": "R9", "overall": 5.0, "unixReviewTime": 1}', r"reviews.json:2: column 'asin': expected"),
        ('{"reviewerID": "R9", "asin": "B1", "overall": "five", "unixReviewTime": 1}',
         r"reviews.json:2: column 'overall': expected a number, found 'five'"),
        ("{'reviewerID': 'R9', 'asin': ", r"reviews.json:2: expected a JSON object"),
        ("[1, 2, 3]", r"reviews.json:2: expected a JSON object, found a list"),
    ],
)
def test_amazon_errors_name_file_line_and_field(amazon: dict[str, Path], tmp_path: Path, line: str,
                                                message: str) -> None:
    good = {"reviewerID": "R1", "asin": "B001", "overall": 5.0, "unixReviewTime": 1}
    reviews = _lines(tmp_path / "reviews.json", [good, line])
    with pytest.raises(DataFormatError, match=message):
        read_amazon(reviews, amazon["meta"])


def test_json_lines_skip_blank_lines_and_reject_bad_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert [(n, r["a"]) for n, r in iter_json_lines(path)] == [(1, 1), (4, 2)]
    broken = tmp_path / "y.json.gz"
    broken.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-6])  # no trailer
    with pytest.raises(DataFormatError, match="y.json.gz"):
        list(iter_json_lines(broken))


# -- Yelp --------------------------------------------------------------------------------------------

@pytest.fixture()
def yelp(tmp_path: Path) -> dict[str, Path]:
    reviews = [
        {"review_id": "r1", "user_id": "alice", "business_id": "b1", "stars": 4, "date": "2016-03-09 00:00:00"},
        {"review_id": "r2", "user_id": "bob", "business_id": "b2", "stars": 2, "date": "2017-01-14 21:30:33"},
        {"review_id": "r3", "user_id": "alice", "business_id": "b3", "stars": 5, "date": "2018-07-01 12:00:00"},
    ]
    business = [
        {"business_id": "b1", "name": "Noodle Bar", "categories": "Restaurants, Noodles", "city": "Toronto",
         "state": "ON"},
        {"business_id": "b2", "name": "Tyre Shop", "categories": None, "city": "Phoenix", "state": "AZ"},
        {"business_id": "b3", "name": "Cafe", "categories": "Coffee & Tea", "city": "Las Vegas", "state": "NV"},
    ]
    photos = [
        {"photo_id": "p2", "business_id": "b1", "caption": "the bar", "label": "inside"},
        {"photo_id": "p1", "business_id": "b1", "caption": "a bowl", "label": "food"},
        {"photo_id": "p3", "business_id": "b2", "caption": "", "label": "outside"},
    ]
    _picture(tmp_path / "photos" / "p2.jpg", (10, 120, 10))
    _picture(tmp_path / "photos" / "p1.jpg", (120, 10, 10))
    return {
        "review": _lines(tmp_path / "review.json", reviews),
        "business": _lines(tmp_path / "business.json", business),
        "photos": _lines(tmp_path / "photos.json", photos),
    }


def test_yelp_reviews_businesses_and_first_photos(yelp: dict[str, Path]) -> None:
    raw = read_yelp(yelp["review"], yelp["business"], photos=yelp["photos"])
    assert raw.interactions["timestamp"].tolist() == [1457481600.0, 1484429433.0, 1530446400.0]
    assert raw.interactions["rating"].tolist() == [4.0, 2.0, 5.0]
    items = raw.items.set_index("item_id")
    assert items.loc["b1", "photo"].endswith("p2.jpg") and items.loc["b1", "caption"] == "the bar"
    assert items.loc["b2", "photo"] == ""  # its photo file is absent
    assert items.loc["b2", "categories"] == "" and items.loc["b3", "categories"] == "Coffee & Tea"
    assert raw.default_columns == {"text": ("name", "categories", "city"), "image": ("photo",)}
    no_photos = read_yelp(yelp["review"], yelp["business"])
    assert "image" not in no_photos.default_columns


def test_yelp_bad_date_names_line_and_field(yelp: dict[str, Path], tmp_path: Path) -> None:
    reviews = _lines(tmp_path / "review2.json", [
        {"user_id": "alice", "business_id": "b1", "stars": 4, "date": "2016-03-09"},
        {"user_id": "bob", "business_id": "b2", "stars": 2, "date": "yesterday"},
    ])
    with pytest.raises(DataFormatError, match=r"review2.json:2: column 'date': expected a date"):
        read_yelp(reviews, yelp["business"])


# -- MovieLens ---------------------------------------------------------------------------------------

def _ml100k(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n")
    flags = ["0"] * len(ML100K_GENRES)
    toy = flags.copy()
    toy[ML100K_GENRES.index("Animation")] = toy[ML100K_GENRES.index("Comedy")] = "1"
    untitled = flags.copy()
    untitled[0] = "1"
    lines = [
        "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x"] + toy),
        "|".join(["2", "unknown", "05-Feb-1996", "", ""] + untitled),
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def test_movielens_100k_with_posters(tmp_path: Path) -> None:
    _ml100k(tmp_path / "ml-100k")
    _picture(tmp_path / "posters" / "1.jpg", (5, 5, 5))
    raw = read_public("movielens", tmp_path / "ml-100k" / "u.data", tmp_path / "ml-100k" / "u.item",
                      images=tmp_path / "posters")
    assert raw.items[["item_id", "title", "year", "genres"]].values.tolist() == [
        ["1", "Toy Story", "1995", "Animation|Comedy"], ["2", "unknown", "1996", "unknown"]]
    assert raw.items["poster"].tolist() == [str(tmp_path / "posters" / "1.jpg"), ""]
    assert raw.interactions["user_id"].tolist() == ["1", "1", "2"]
    assert raw.default_columns == {"text": ("title", "year", "genres"), "image": ("poster",)}
    assert "image" not in read_movielens_raw(tmp_path / "ml-100k" / "u.data",
                                             tmp_path / "ml-100k" / "u.item").default_columns


def test_movielens_1m(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    (tmp_path / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                                          "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                                          .encode("latin-1"))
    raw = read_movielens_raw(tmp_path / "ratings.dat", tmp_path / "movies.dat")
    assert raw.items["title"].tolist() == ["One Flew Over the Cuckoo's Nest", "James and the Giant Peach"]
    assert raw.items["genres"].tolist() == ["Drama", "Animation|Children's|Musical"]
    assert raw.interactions["timestamp"].tolist() == [978300760.0, 978302109.0]


def test_movielens_bad_rating_names_line(tmp_path: Path) -> None:
    _ml100k(tmp_path)
    (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n1\t2\tfive\t876893171\n")
    with pytest.raises(DataFormatError, match=r"u.data:2: column 'rating': expected a finite number"):
        read_movielens_raw(tmp_path / "u.data", tmp_path / "u.item")


def test_movielens_csv_style_keeps_poster_paths(tmp_path: Path) -> None:
    _picture(tmp_path / "posters" / "1.jpg", (5, 5, 5))
    pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [5, 4], "timestamp": [1, 2]}).to_csv(
        tmp_path / "interactions.csv", index=False)
    pd.DataFrame({"item_id": [1, 2], "title": ["Toy Story", "Heat"], "year": [1995, 1995],
                  "genres": ["Animation", "Action"], "poster": ["posters/1.jpg", ""]}).to_csv(
        tmp_path / "items.csv", index=False)
    raw = read_movielens_raw(tmp_path / "interactions.csv", tmp_path / "items.csv")
    assert raw.items["poster"].tolist() == ["posters/1.jpg", ""]
    assert raw.default_columns == {"text": ("title", "year", "genres"), "image": ("poster",)}


@pytest.mark.skipif(not SHARED_RAW.is_dir(), reason="ml100k-posters raw data not present")
def test_movielens_reads_the_shared_ml100k_posters_raw_folder() -> None:
    raw = read_movielens_raw(SHARED_RAW / "interactions.csv", SHARED_RAW / "items.csv")
    assert len(raw.interactions) == 100_000 and len(raw.items) == 1682
    assert (raw.items["poster"] != "").sum() == 1646


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--format"):
        read_public("netflix", tmp_path / "a", tmp_path / "b")


def test_cli_builds_a_public_format(amazon: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="modalrec")
    add_build_parser(parser.add_subparsers(dest="data_command", required=True))
    out = tmp_path / "baby"
    args = parser.parse_args(["build", "--format", "amazon", "--interactions", str(amazon["reviews"]), "--items",
                              str(amazon["meta"]), "--images", str(amazon["images"]), "--out", str(out),
                              "--image-extractor", "handcrafted", "--text-extractor", "tfidf", "--set", "text.dim=2",
                              "--device", "cpu"])
    assert args.handler(args) == 0
    assert "problems: 1 (image url 1)" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["source"]["format"] == "amazon"
