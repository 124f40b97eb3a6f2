"""A catalogue of malformed input files, each refused with the exact error class and a message that names the
file and the line or field; then unusual but valid files, which must be read exactly; then raw content that
``modalrec data build`` reports item by item instead of failing.

Every malformed case writes its files into a fresh folder and returns the call that reads them. The config,
CLI and HTTP cases live in ``tests/test_bad_config.py`` and ``tests/cli/test_bad_cli_api.py``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modalrec.config import DataConfig
from modalrec.data import load_dataset
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.data.prepare import prepare_data
from modalrec.data.public import read_amazon, read_yelp
from modalrec.data.split import Pairs, Split
from modalrec.errors import ConfigError, DataFormatError, ModalrecError, UnknownNameError

Read = Callable[[], object]
SOME_LINE = -1
"""An expected line number that depends on the compression library: any line will do."""

GENRES = "|".join(["0"] * 19)
U_ITEM = f"1|Toy Story (1995)|01-Jan-1995||http://x|{GENRES}\n2|Heat (1995)|01-Jan-1995||http://x|{GENRES}\n"
REVIEW = '{"reviewerID": "U1", "asin": "A1", "overall": 5.0, "unixReviewTime": 100}\n'


@dataclass(frozen=True)
class Expect:
    """The error a case must raise: its exact class, the file named, and the line / field when there is one."""

    error: type[Exception]
    file: str
    words: str
    line: int | None = None
    field: str | None = None


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def table(content: str | bytes, name: str = "interactions.csv", **config: object) -> Callable[[Path], Read]:
    """An interactions table read with the table format."""

    def setup(tmp: Path) -> Read:
        path = write(tmp, name, content)
        return lambda: load_dataset(path, DataConfig(format="table", **config))  # type: ignore[arg-type]

    return setup


def parquet(frame: pd.DataFrame) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        frame.to_parquet(tmp / "interactions.parquet")
        return lambda: load_dataset(tmp / "interactions.parquet", DataConfig(format="table"))

    return setup


def raw_parquet(content: bytes) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        path = write(tmp, "interactions.parquet", content)
        return lambda: load_dataset(path, DataConfig(format="table"))

    return setup


def truncated_parquet(tmp: Path) -> Read:
    path = tmp / "interactions.parquet"
    pd.DataFrame({"user_id": ["u"] * 50, "item_id": ["i"] * 50}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:120])
    return lambda: load_dataset(path, DataConfig(format="table"))


def mmrec(inter: str = "userID\titemID\n0\t0\n1\t1\n0\t2\n", **files: str | bytes) -> Callable[[Path], Read]:
    """An MMRec folder ``d`` with ``d.inter`` and further files (``image_feat.npy`` = ``image_feat_npy``)."""

    def setup(tmp: Path) -> Read:
        folder = tmp / "d"
        write(folder, "d.inter", inter)
        for name, content in files.items():
            write(folder, name.replace("_npy", ".npy").replace("_csv", ".csv"), content)
        return lambda: load_dataset(folder)

    return setup


def features(values: np.ndarray, ids: str = "x\ny\n") -> Callable[[Path], Read]:
    """A CSV of interactions plus an .npy feature file aligned to an item id list."""

    def setup(tmp: Path) -> Read:
        write(tmp, "interactions.csv", "user_id,item_id\nu1,x\nu2,y\n")
        write(tmp, "ids.txt", ids)
        np.save(tmp / "image.npy", values)
        config = DataConfig(features={"image": "image.npy"}, item_ids_file="ids.txt")
        return lambda: load_dataset(tmp / "interactions.csv", config)

    return setup


def parquet_features(frame: pd.DataFrame) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        write(tmp, "interactions.csv", "user_id,item_id\nu1,x\nu2,y\n")
        frame.to_parquet(tmp / "text.parquet")
        return lambda: load_dataset(tmp / "interactions.csv", DataConfig(features={"text": "text.parquet"}))

    return setup


def movielens(**files: str | bytes) -> Callable[[Path], Read]:
    """A MovieLens folder; ``u_data`` = u.data, ``u_item`` = u.item, ``ratings_dat``, ``movies_dat``."""

    def setup(tmp: Path) -> Read:
        for name, content in files.items():
            text = content.encode("latin-1") if isinstance(content, str) else content
            write(tmp / "ml", name.replace("_", "."), text)
        return lambda: load_dataset(tmp / "ml")

    return setup


def raw_tables(items: str | bytes, interactions: str = "user_id,item_id\nu1,a\nu2,b\n",
               items_name: str = "items.csv") -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        write(tmp, "interactions.csv", interactions)
        path = write(tmp, items_name, items)
        return lambda: read_raw_tables(tmp / "interactions.csv", path)

    return setup


def items_parquet(frame: pd.DataFrame) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        write(tmp, "interactions.csv", "user_id,item_id\nu1,a\n")
        frame.to_parquet(tmp / "items.parquet")
        return lambda: read_raw_tables(tmp / "interactions.csv", tmp / "items.parquet")

    return setup


def build(items: str, spec: ModalitySpec, interactions: str = "user_id,item_id\nu1,a\nu2,b\n",
          out: str = "out", files: tuple[str, ...] = ()) -> Callable[[Path], Read]:
    """``build_dataset`` over raw tables in ``raw/``; ``files`` are created empty beforehand."""

    def setup(tmp: Path) -> Read:
        raw = tmp / "raw"
        write(raw, "interactions.csv", interactions)
        write(raw, "items.csv", items)
        (raw / "images").mkdir()
        for name in files:
            write(tmp, name, b"taken")
        return lambda: build_dataset(read_raw_tables(raw / "interactions.csv", raw / "items.csv"), [spec], tmp / out,
                                     BuildOptions(progress=False))

    return setup


def amazon(reviews: str | bytes, name: str = "reviews.json", gz: bool = False) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        data = reviews.encode() if isinstance(reviews, str) else reviews
        path = write(tmp, name, gzip.compress(data)[:-12] if gz else data)
        meta = write(tmp, "meta.json", '{"asin": "A1", "title": "red mug"}\n')
        return lambda: read_amazon(path, meta)

    return setup


def yelp(reviews: str) -> Callable[[Path], Read]:
    def setup(tmp: Path) -> Read:
        path = write(tmp, "review.json", reviews)
        business = write(tmp, "business.json", '{"business_id": "B1", "name": "Cafe"}\n')
        return lambda: read_yelp(path, business)

    return setup


def late_bad_timestamp(value: str, line: int = 2498) -> str:
    """An interactions CSV of numeric timestamps whose ``line``-th line holds ``value`` instead."""
    rows = [f"u{n % 7},a,{1_500_000_000 + n}" if n != line else f"u1,a,{value}" for n in range(2, 2601)]
    return "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n"


def repeats(deduplicate: bool) -> Callable[[Path], Read]:
    """User 0 has item 1 in train and again in test; read with ``data.deduplicate`` as given."""

    def setup(tmp: Path) -> Read:
        inter = "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n0\t1\t2\n1\t0\t0\n1\t2\t0\n1\t1\t2\n"
        write(tmp / "d", "d.inter", inter)
        return lambda: prepare_data(tmp / "d", DataConfig(deduplicate=deduplicate))

    return setup


def split_file(cut: int | None = None, users: int = 2) -> Callable[[Path], Read]:
    """A saved split, cut after ``cut`` bytes, or claiming only ``users`` users while it uses user 2."""

    def setup(tmp: Path) -> Read:
        pairs = Pairs(np.array([0, 2]), np.array([1, 0]))
        Split(users, 2, train=pairs, valid=pairs, test=pairs).save(tmp / "split.npz")
        if cut is not None:
            (tmp / "split.npz").write_bytes((tmp / "split.npz").read_bytes()[:cut])
        return lambda: Split.load(tmp / "split.npz")

    return setup


def _float_split(tmp: Path) -> Path:
    """A split file whose train items were rewritten as fractions (a hand-edited split)."""
    pairs = Pairs(np.array([0, 1]), np.array([1, 0]))
    Split(2, 2, train=pairs, valid=pairs, test=pairs).save(tmp / "split.npz")
    with np.load(tmp / "split.npz") as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays["train_items"] = arrays["train_items"] + 0.5
    np.savez_compressed(tmp / "split.npz", **arrays)
    return tmp / "split.npz"


IMAGE = ModalitySpec("image", ("image",), "handcrafted", {})
TITLE = ModalitySpec("text", ("title",), "tfidf", {})
ONES = np.ones((3, 2), dtype=np.float32)
VALID_NPY = npy_bytes(np.arange(12, dtype=np.float32).reshape(3, 4))

MALFORMED = [
    # --- interactions tables (CSV / TSV) ------------------------------------------------------------------
    pytest.param(table("user_id,item_id\ncaf\xe9,i1\n".encode("latin-1")),
                 Expect(DataFormatError, "interactions.csv", "not valid UTF-8 text: byte 0xe9 at column 4", 2),
                 id="csv-latin1-encoding"),
    pytest.param(table("user_id,item_id\nu1,i1\n".encode("utf-16-le")),
                 Expect(DataFormatError, "interactions.csv", "NUL byte", 1), id="csv-utf16-without-bom"),
    pytest.param(table(bytes(np.random.default_rng(0).integers(128, 256, 300, dtype=np.uint8))),
                 Expect(DataFormatError, "interactions.csv", "not valid UTF-8", 1), id="csv-binary-garbage"),
    pytest.param(table("user_id,item_id\nu1,i1\nu2\ti2\nu3,i3\n"),
                 Expect(DataFormatError, "interactions.csv", "the line holds a tab", 3), id="csv-mixed-delimiters"),
    pytest.param(table('user_id,item_id\nu1,i1\nu2,"i2\nu3,i3\n'),
                 Expect(DataFormatError, "interactions.csv", "quoted value is never closed", 3),
                 id="csv-unclosed-quote"),
    pytest.param(table("user_id,item_id\nu1,i1\nu2,i2,x,y\n"),
                 Expect(DataFormatError, "interactions.csv", "expected 2 columns, found 4", 3),
                 id="csv-unquoted-separator-extra-fields"),
    pytest.param(table("user_id,item_id\nu1,i1\n" + "u" * 1_000_000 + ",i2,oops\n"),
                 Expect(DataFormatError, "interactions.csv", "expected 2 columns, found 3", 3),
                 id="csv-very-long-line-extra-field"),
    pytest.param(table("user_id,item_id\nu1,i1\nu2\n"),
                 Expect(DataFormatError, "interactions.csv", "expected 2 columns, found 1", 3), id="csv-truncated-row"),
    pytest.param(table("user_id,item_id,user_id\nu1,i1,u2\n"),
                 Expect(DataFormatError, "interactions.csv", "'user_id' appears more than once", 1),
                 id="csv-duplicate-header"),
    pytest.param(table("user,item_id\nu1,i1\n"),
                 Expect(DataFormatError, "interactions.csv", "missing column(s) user_id", 1), id="csv-missing-column"),
    pytest.param(table(""), Expect(DataFormatError, "interactions.csv", "file is empty"), id="csv-empty-file"),
    pytest.param(table("user_id,item_id\n\n\n"), Expect(DataFormatError, "interactions.csv", "no interactions"),
                 id="csv-header-only"),
    pytest.param(table("user_id,item_id\nu1,i1\n  ,i2\n"),
                 Expect(DataFormatError, "interactions.csv", "expected an id, found '  '", 3, "user_id"),
                 id="csv-blank-id"),
    pytest.param(table(b"user_id,item_id\nu1,i\x001\n"),
                 Expect(DataFormatError, "interactions.csv", "NUL byte", 2, "item_id"), id="csv-nul-byte-in-id"),
    pytest.param(table("user_id,item_id,rating\nu1,i1,4\nu2,i2,nan\n"),
                 Expect(DataFormatError, "interactions.csv", "expected a finite number, found 'nan'", 3, "rating"),
                 id="csv-rating-nan"),
    pytest.param(table("user_id,item_id,rating\nu1,i1,-inf\n"),
                 Expect(DataFormatError, "interactions.csv", "expected a finite number", 2, "rating"),
                 id="csv-rating-inf"),
    pytest.param(table("user_id,item_id,timestamp\nu1,i1,yesterday\n"),
                 Expect(DataFormatError, "interactions.csv", "'yesterday'", 2, "timestamp"), id="csv-timestamp-text"),
    pytest.param(table("user_id,item_id,x_label\nu1,i1,0\nu1,i2,3\n"),
                 Expect(DataFormatError, "interactions.csv", "0 (train), 1 (valid) or 2 (test)", 3, "x_label"),
                 id="csv-split-label-3"),
    pytest.param(table("user_id\titem_id\nu1\ti1\n", name="log.csv"),
                 Expect(DataFormatError, "log.csv", "the header holds a tab but the separator is ','", 1),
                 id="csv-wrong-separator"),
    pytest.param(table("user_id,item_id\nu1,i1\n", sep="(("),
                 Expect(DataFormatError, "interactions.csv", "the separator is '(('", 1), id="csv-separator-regex-chars"),
    pytest.param(lambda tmp: lambda: load_dataset(Path("/dev/null"), DataConfig(format="table")),
                 Expect(DataFormatError, "/dev/null", "expected a regular file, found a device"),
                 id="interactions-is-a-device"),
    # --- interactions tables (Parquet) --------------------------------------------------------------------
    pytest.param(parquet(pd.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"]})),
                 Expect(DataFormatError, "interactions.parquet", "found null", 2, "user_id"), id="parquet-null-id"),
    pytest.param(parquet(pd.DataFrame({"user_id": [1.0, np.nan], "item_id": ["x", "y"]})),
                 Expect(DataFormatError, "interactions.parquet", "found null", 2, "user_id"), id="parquet-nan-float-id"),
    pytest.param(parquet(pd.DataFrame({"user_id": [1.0, 2.5], "item_id": ["x", "y"]})),
                 Expect(DataFormatError, "interactions.parquet", "whole number), found 2.5", 2, "user_id"),
                 id="parquet-fractional-id"),
    pytest.param(parquet(pd.DataFrame({"user_id": [[1], [2]], "item_id": ["x", "y"]})),
                 Expect(DataFormatError, "interactions.parquet", "expected an id (text or a whole number)", 1,
                        "user_id"), id="parquet-list-id"),
    pytest.param(parquet(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "rating": [5.0, np.nan]})),
                 Expect(DataFormatError, "interactions.parquet", "expected a finite number", 2, "rating"),
                 id="parquet-rating-nan"),
    pytest.param(raw_parquet(b"PAR1 this is not parquet PAR1"),
                 Expect(DataFormatError, "interactions.parquet", "not a readable Parquet file"), id="parquet-corrupt"),
    pytest.param(truncated_parquet, Expect(DataFormatError, "interactions.parquet", "not a readable Parquet file"),
                 id="parquet-truncated"),
    # --- MMRec .inter and mapping files -------------------------------------------------------------------
    pytest.param(mmrec("userID\titemID\n0\t1\n0\t1.5\n"),
                 Expect(DataFormatError, "d.inter", "found '1.5'", 3, "itemID"), id="inter-float-id"),
    pytest.param(mmrec("userID\titemID\n-1\t1\n"),
                 Expect(DataFormatError, "d.inter", "non-negative integer id, found '-1'", 2, "userID"),
                 id="inter-negative-id"),
    pytest.param(mmrec("userID\titemID\n0\t0\n3000000000\t1\n"),
                 Expect(DataFormatError, "d.inter", "below 2^31", 3, "userID"), id="inter-id-beyond-2^31"),
    pytest.param(mmrec("userID\titemID\n0\t0\n0\t99999999999999999999\n"),
                 Expect(DataFormatError, "d.inter", "found '99999999999999999999'", 3, "itemID"),
                 id="inter-id-beyond-2^63"),
    pytest.param(mmrec("userID\titemID\n0\tinf\n"),
                 Expect(DataFormatError, "d.inter", "found 'inf'", 2, "itemID"), id="inter-inf-id"),
    pytest.param(mmrec("userID\titemID\n0\t0\n50000000\t1\n"),
                 Expect(DataFormatError, "d", "only 2 distinct", field="userID"), id="inter-sparse-ids"),
    pytest.param(mmrec("userID,itemID\n0,1\n"),
                 Expect(DataFormatError, "d.inter", "the header holds ',' but the separator is a tab", 1),
                 id="inter-comma-separated"),
    pytest.param(mmrec(""), Expect(DataFormatError, "d.inter", "file is empty"), id="inter-empty-file"),
    pytest.param(mmrec(u_id_mapping_csv="user_id\tuserID\nA\t0\nA\t1\n"),
                 Expect(DataFormatError, "u_id_mapping.csv", "each id once", 3, "user_id"),
                 id="mapping-duplicate-id"),
    pytest.param(mmrec(u_id_mapping_csv="user_id\tuserID\nA\t0\nB\t2\n"),
                 Expect(DataFormatError, "u_id_mapping.csv", "an index in 0..1", 3, "userID"), id="mapping-index-gap"),
    pytest.param(mmrec(u_id_mapping_csv="user_id\tuserID\nA\t0\n"),
                 Expect(DataFormatError, "u_id_mapping.csv", "the interactions use index 1", field="userID"),
                 id="mapping-too-short"),
    pytest.param(mmrec(u_id_mapping_csv='user_id\tuserID\nA\t0\n"B\tC"\t1\n'),
                 Expect(DataFormatError, "u_id_mapping.csv", "without control characters", 3, "user_id"),
                 id="mapping-tab-inside-quoted-id"),
    pytest.param(table('user_id,item_id\nu1,"i\r1"\n'),
                 Expect(DataFormatError, "interactions.csv", "without control characters", 2, "item_id"),
                 id="csv-line-break-inside-quoted-id"),
    pytest.param(mmrec(i_id_mapping_csv="item_id\titemID\nx\t0\n\t1\nz\t2\n"),
                 Expect(DataFormatError, "i_id_mapping.csv", "expected an id, found ''", 3, "item_id"),
                 id="mapping-empty-id"),
    # --- MMRec feature files (.npy) -----------------------------------------------------------------------
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.array([["a"] * 4] * 3))),
                 Expect(DataFormatError, "image_feat.npy", "2-D numeric array (items x dims), found shape (3, 4) <U1"),
                 id="npy-string-dtype"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.array([[1, 2], [3, None], [4, 5]], dtype=object))),
                 Expect(DataFormatError, "image_feat.npy", "holds Python objects"), id="npy-object-array"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.ones(3, dtype=complex).reshape(3, 1))),
                 Expect(DataFormatError, "image_feat.npy", "complex128"), id="npy-complex-dtype"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.ones(3))),
                 Expect(DataFormatError, "image_feat.npy", "found shape (3,)"), id="npy-1d"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.ones((3, 2, 2)))),
                 Expect(DataFormatError, "image_feat.npy", "found shape (3, 2, 2)"), id="npy-3d"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.ones((3, 0)))),
                 Expect(DataFormatError, "image_feat.npy", "no feature columns"), id="npy-zero-columns"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.ones((2, 4)))),
                 Expect(DataFormatError, "image_feat.npy", "has 2 rows; expected at least 3"), id="npy-too-few-rows"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.array([[1, np.nan], [1, 1], [1, 1]]))),
                 Expect(DataFormatError, "image_feat.npy", "row 0, column 1: expected a finite number, found nan"),
                 id="npy-nan"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.array([[1, 1], [1, 1], [1, -np.inf]]))),
                 Expect(DataFormatError, "image_feat.npy", "row 2, column 1: expected a finite number, found -inf"),
                 id="npy-inf"),
    pytest.param(mmrec(image_feat_npy=npy_bytes(np.full((3, 2), 1e300))),
                 Expect(DataFormatError, "image_feat.npy", "found 1e+300 (beyond the float32 range)"),
                 id="npy-beyond-float32"),
    pytest.param(mmrec(image_feat_npy=VALID_NPY[:-10]),
                 Expect(DataFormatError, "image_feat.npy", "truncated"), id="npy-truncated-data"),
    pytest.param(mmrec(image_feat_npy=VALID_NPY[:40]),
                 Expect(DataFormatError, "image_feat.npy", "truncated"), id="npy-truncated-header"),
    pytest.param(mmrec(image_feat_npy=b""), Expect(DataFormatError, "image_feat.npy", "file is empty"),
                 id="npy-empty-file"),
    pytest.param(mmrec(image_feat_npy=b"0.1 0.2\n0.3 0.4\n"),
                 Expect(DataFormatError, "image_feat.npy", "not the NPY header"), id="npy-text-file"),
    pytest.param(mmrec(image_feat_npy=VALID_NPY, text_feat_npy=npy_bytes(np.ones((4, 2)))),
                 Expect(DataFormatError, "text_feat.npy", "has 4 rows but image_feat.npy has 3"),
                 id="npy-row-counts-disagree"),
    pytest.param(mmrec(image_feat_npy=VALID_NPY, image_missing_npy=npy_bytes(np.zeros(3, dtype=np.int8))),
                 Expect(DataFormatError, "image_missing.npy", "expected a boolean array of shape (3,)"),
                 id="npy-missing-mask-not-bool"),
    # --- feature files of the table format ----------------------------------------------------------------
    pytest.param(features(np.array([[1.0, 2.0], [np.inf, 0.0]])),
                 Expect(DataFormatError, "image.npy", "item id y, column 0: expected a finite number"),
                 id="table-npy-inf-names-item"),
    pytest.param(features(np.ones((2, 2)), ids="x\nx\n"),
                 Expect(DataFormatError, "image.npy", "item id 'x' appears more than once"),
                 id="table-npy-duplicate-item-id"),
    pytest.param(features(np.ones((2, 2)), ids="x\ny\nz\n"),
                 Expect(DataFormatError, "image.npy", "has 2 rows; expected 3"), id="table-npy-fewer-rows-than-ids"),
    pytest.param(features(np.ones((2, 2)), ids="x\ncaf\xe9\n".encode("latin-1")),  # type: ignore[arg-type]
                 Expect(DataFormatError, "ids.txt", "not valid UTF-8", 2), id="table-id-list-latin1"),
    pytest.param(parquet_features(pd.DataFrame({"item_id": ["x", None], "a": [1.0, 2.0]})),
                 Expect(DataFormatError, "text.parquet", "found null", 2, "item_id"), id="table-parquet-null-item-id"),
    pytest.param(parquet_features(pd.DataFrame({"item_id": ["x", "y"], "a": [1.0, 2.0], "b": ["p", "q"]})),
                 Expect(DataFormatError, "text.parquet", "expected numeric feature columns", field="b"),
                 id="table-parquet-text-feature"),
    pytest.param(parquet_features(pd.DataFrame({"item_id": ["x", "y"], "v": [[1.0, 2.0], [3.0]]})),
                 Expect(DataFormatError, "text.parquet", "equal-length numeric vectors", field="v"),
                 id="table-parquet-ragged-vectors"),
    pytest.param(split_file(cut=100, users=3), Expect(DataFormatError, "split.npz", "not a readable split file"),
                 id="split-file-truncated"),
    pytest.param(split_file(), Expect(DataFormatError, "split.npz", "does not fit 2 users x 2 items", field="train"),
                 id="split-file-index-out-of-range"),
    # --- MovieLens ----------------------------------------------------------------------------------------
    pytest.param(movielens(u_data="1\t1\t5\n", u_item=U_ITEM),
                 Expect(DataFormatError, "u.data", "expected 4 columns, found 3", 1), id="ml100k-missing-field"),
    pytest.param(movielens(u_data="1\t1\t5\t100\n1\t9\t4\t101\n", u_item=U_ITEM),
                 Expect(DataFormatError, "u.data", "a movie id listed in the movies file, found '9'", 2, "item"),
                 id="ml100k-unknown-movie"),
    pytest.param(movielens(u_data="1\t1\t5\t100\n", u_item=U_ITEM + U_ITEM.splitlines()[0] + "\n"),
                 Expect(DataFormatError, "u.item", "each movie id once", 3, "item"), id="ml100k-duplicate-movie"),
    pytest.param(movielens(u_data="1\t1\t5\t100\n", u_item=U_ITEM.replace("|0\n", "|x\n", 1)),
                 Expect(DataFormatError, "u.item", "found 'x'", 1, "Western"), id="ml100k-genre-flag-text"),
    pytest.param(movielens(u_data="1\t1\t5\t100\n"), Expect(DataFormatError, "u.item", "file not found"),
                 id="ml100k-no-movies-file"),
    pytest.param(movielens(ratings_dat="1::1::5::100\n2,2,3,200\n", movies_dat="1::Toy Story (1995)::Animation\n"),
                 Expect(DataFormatError, "ratings.dat", "expected 4 columns, found 1 (the line holds ','", 2),
                 id="ml1m-wrong-separator"),
    pytest.param(movielens(ratings_dat="1::1::5::100\n", movies_dat=""),
                 Expect(DataFormatError, "movies.dat", "file is empty"), id="ml1m-empty-movies"),
    # --- items tables and `modalrec data build` -----------------------------------------------------------
    pytest.param(raw_tables("id,title\na,red\n"),
                 Expect(DataFormatError, "items.csv", "missing column(s) item_id", 1), id="items-no-id-column"),
    pytest.param(raw_tables("item_id,title\na,caf\xe9\n".encode("latin-1")),
                 Expect(DataFormatError, "items.csv", "byte 0xe9", 2), id="items-latin1"),
    pytest.param(raw_tables(""), Expect(DataFormatError, "items.csv", "file is empty"), id="items-empty-file"),
    pytest.param(raw_tables("item_id,title\na,\"red, round\nb,blue\n"),
                 Expect(DataFormatError, "items.csv", "never closed", 2), id="items-unclosed-quote"),
    pytest.param(items_parquet(pd.DataFrame({"item_id": ["a", None], "title": ["red", "blue"]})),
                 Expect(DataFormatError, "items.parquet", "found null", 2, "item_id"), id="items-parquet-null-id"),
    pytest.param(raw_tables("item_id,title\na,red\n", interactions="user_id,item_id,timestamp\nu1,a,soon\n"),
                 Expect(DataFormatError, "interactions.csv", "a number or a date, found 'soon'", 2, "timestamp"),
                 id="build-timestamp-garbage"),
    pytest.param(build("item_id,image\na,images/a.png\nb,images/b.png\n", IMAGE),
                 Expect(DataFormatError, "items.csv", "no item has usable content in column(s) image (most common: "
                        "file not found)"), id="build-empty-image-folder"),
    pytest.param(build("item_id,title\na,\nb,\n", TITLE),
                 Expect(DataFormatError, "items.csv", "no item has usable content in column(s) title"),
                 id="build-all-texts-empty"),
    pytest.param(build("item_id,title\na,red\n", IMAGE),
                 Expect(DataFormatError, "items.csv", "missing column(s) image", 1), id="build-no-content-column"),
    pytest.param(build("item_id,title\na,red\n", ModalitySpec("text", ("title",), "no-such", {})),
                 Expect(UnknownNameError, "no-such", "choose one of"), id="build-unknown-extractor"),
    pytest.param(build("item_id,title\na,red\n", ModalitySpec("text", ("title",), "handcrafted", {})),
                 Expect(ConfigError, "--text-extractor", "'handcrafted' is a image extractor"),
                 id="build-extractor-of-another-kind"),
    pytest.param(build("item_id,title\na,red\n", ModalitySpec("text", ("title",), "tfidf", {"dim": "x"})),
                 Expect(ConfigError, "extractor.tfidf.dim", "expected an integer, found 'x'"),
                 id="build-extractor-setting-wrong-type"),
    pytest.param(build("item_id,title\na,red\n", TITLE, out="taken", files=("taken",)),
                 Expect(ModalrecError, "taken", "exists and is not a folder"), id="build-output-is-a-file"),
    # --- JSON lines (Amazon, Yelp) ------------------------------------------------------------------------
    pytest.param(amazon(REVIEW + '{"reviewerID": "U2", "asin"\n'),
                 Expect(DataFormatError, "reviews.json", "expected a JSON object", 2), id="amazon-broken-json"),
    pytest.param(amazon('{"reviewerID": "caf\xe9"}\n'.encode("latin-1")),
                 Expect(DataFormatError, "reviews.json", "byte 0xe9 at column 20", 1), id="amazon-latin1"),
    pytest.param(amazon(REVIEW.encode("utf-16")),
                 Expect(DataFormatError, "reviews.json", "(the file is UTF-16)", 1), id="amazon-utf16"),
    pytest.param(amazon(REVIEW * 300, name="reviews.json.gz", gz=True),
                 Expect(DataFormatError, "reviews.json.gz", "Compressed file ended", SOME_LINE),
                 id="amazon-truncated-gzip"),
    pytest.param(amazon("[" * 100_000 + "\n"),
                 Expect(DataFormatError, "reviews.json", "nested too deeply", 1), id="amazon-deep-nesting"),
    pytest.param(amazon('[1, 2]\n'), Expect(DataFormatError, "reviews.json", "found a list", 1),
                 id="amazon-array-not-object"),
    pytest.param(amazon(REVIEW.replace("100}", "1" + "0" * 400 + "}")),
                 Expect(DataFormatError, "reviews.json", "expected a number", 1, "unixReviewTime"),
                 id="amazon-number-beyond-float"),
    pytest.param(amazon(REVIEW.replace('"asin": "A1", ', "")),
                 Expect(DataFormatError, "reviews.json", "expected a non-empty id without control characters, found null", 1, "asin"),
                 id="amazon-missing-id"),
    pytest.param(amazon(REVIEW.replace('"U1"', '"U\\r1"')),
                 Expect(DataFormatError, "reviews.json", "without control characters", 1, "reviewerID"),
                 id="amazon-carriage-return-in-id"),
    pytest.param(amazon(REVIEW.replace('"U1"', "1.5")),
                 Expect(DataFormatError, "reviews.json", "found 1.5", 1, "reviewerID"), id="amazon-float-id"),
    pytest.param(yelp('{"user_id": "U1", "business_id": "B1", "stars": 4, "date": "last week"}\n'),
                 Expect(DataFormatError, "review.json", "expected a date", 1, "date"), id="yelp-bad-date"),
    # issue 17: a bad value far down a column is reported at its own line, quoting it (was line 2, a good value)
    pytest.param(raw_tables("item_id,title\na,red\n", interactions=late_bad_timestamp("2019-13-45")),
                 Expect(DataFormatError, "interactions.csv", "found '2019-13-45'", 2498, "timestamp"),
                 id="build-timestamp-bad-on-line-2498"),
    pytest.param(raw_tables("item_id,title\na,red\n", interactions=late_bad_timestamp("")),
                 Expect(DataFormatError, "interactions.csv", "found ''", 2498, "timestamp"),
                 id="build-timestamp-empty-on-line-2498"),
    pytest.param(repeats(False), Expect(DataFormatError, "d.inter", "1 valid/test interactions repeat a training pair "
                                        "(first in test: user '0', item '1')"), id="deduplicate-false-repeats"),
    pytest.param(lambda tmp: (lambda: Split.load(_float_split(tmp))),
                 Expect(DataFormatError, "split.npz", "expected integer indices", field="train"),
                 id="split-file-float-indices"),
]


@pytest.mark.parametrize(("setup", "expect"), MALFORMED)
def test_malformed_input_is_refused_naming_file_and_line_or_field(tmp_path: Path, setup: Callable[[Path], Read],
                                                                  expect: Expect) -> None:
    read = setup(tmp_path)
    with pytest.raises(ModalrecError) as info:
        read()
    error = info.value
    message = str(error)
    assert type(error) is expect.error, message
    assert expect.file in message and expect.words in message, message
    assert "\n" not in message.strip() and len(message) < 1000  # one line, whatever the input
    if isinstance(error, DataFormatError):
        assert error.path is not None and error.path.endswith(expect.file)
        assert error.line == expect.line or (expect.line == SOME_LINE and error.line), message
        assert error.field == expect.field, message
        if expect.line is not None and expect.line != SOME_LINE:
            assert f"{expect.file}:{expect.line}: " in message
        if expect.field is not None:
            assert f"'{expect.field}'" in message
    elif isinstance(error, ConfigError):
        assert error.key == expect.file


def test_the_catalogue_is_large_enough() -> None:
    assert len(MALFORMED) >= 45
    assert len({case.id for case in MALFORMED}) == len(MALFORMED)


# --- unusual but valid input: read exactly ------------------------------------------------------------------


def read_ids(path: Path, **config: object) -> list[tuple[str, str]]:
    """(user id, item id) of every interaction, in file order."""
    dataset = load_dataset(path, DataConfig(**config))  # type: ignore[arg-type]
    return [(dataset.user_ids.external[u], dataset.item_ids.external[i])
            for u, i in zip(dataset.users, dataset.items, strict=True)]


@pytest.mark.parametrize(("name", "content", "expected"), [
    pytest.param("i.csv", "\ufeffuser_id,item_id\nu1,i1\n".encode(), [("u1", "i1")], id="utf8-bom"),
    pytest.param("i.csv", "user_id,item_id\nü1,i1\n".encode("utf-16"), [("ü1", "i1")], id="utf16-with-bom"),
    pytest.param("i.csv", b"user_id,item_id\r\nu1,i1\r\nu2,i2\r\n", [("u1", "i1"), ("u2", "i2")], id="crlf"),
    pytest.param("i.csv", 'user_id,item_id\n"a,b",i1\nu2,"say ""hi"""\n'.encode(),
                 [("a,b", "i1"), ("u2", 'say "hi"')], id="quoted-separators-and-quotes"),
    pytest.param("i.csv", "user_id,item_id\nユーザー,🍵\nCafé,naïve\n".encode(),
                 [("ユーザー", "🍵"), ("Café", "naïve")], id="unicode-ids"),
    pytest.param("i.csv", b"user_id,item_id\n-1,1.5\n4294967296,18446744073709551616\n",
                 [("-1", "1.5"), ("4294967296", "18446744073709551616")], id="number-like-ids-stay-text"),
    pytest.param("i.csv", b"user_id,item_id\nNA,null\nnan,None\n", [("NA", "null"), ("nan", "None")],
                 id="missing-value-words-are-ids"),
    pytest.param("i.csv", b"user_id,item_id\n\nu1,i1\n\n\nu2,i2\n\n", [("u1", "i1"), ("u2", "i2")],
                 id="blank-lines-skipped"),
    pytest.param("i.tsv", b"user_id\titem_id\n u1 \t i1\n", [("u1", "i1")], id="padded-ids-stripped"),
])
def test_unusual_but_valid_tables_are_read_exactly(tmp_path: Path, name: str, content: bytes,
                                                   expected: list[tuple[str, str]]) -> None:
    assert read_ids(write(tmp_path, name, content), format="table") == expected


def test_a_very_long_id_is_kept_whole(tmp_path: Path) -> None:
    long_id = "x" * 1_000_000
    path = write(tmp_path, "i.csv", f"user_id,item_id\n{long_id},i1\nu2,i2\n")
    assert read_ids(path, format="table") == [(long_id, "i1"), ("u2", "i2")]


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "i.csv", "user_id,item_id,rating\n\nu1,i1,4\n\n\nu2,i2,bad\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset(path, DataConfig(format="table"))
    assert info.value.line == 6


def test_parquet_integer_and_whole_float_ids_are_the_same_text(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": [1.0, 2.0], "item_id": pd.array([10, 11], dtype="Int64")}).to_parquet(tmp_path / "i.parquet")
    assert read_ids(tmp_path / "i.parquet", format="table") == [("1", "10"), ("2", "11")]


def test_unicode_mapping_files_and_numeric_dtypes_in_npy(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    write(folder, "d.inter", "userID\titemID\n0\t1\n1\t0\n")
    write(folder, "u_id_mapping.csv", "user_id\tuserID\nこんにちは\t0\n\"say \"\"hi\"\", you\"\t1\n")
    np.save(folder / "image_feat.npy", np.array([[True, False], [False, True]]))
    np.save(folder / "text_feat.npy", np.ones((2, 3), dtype=">f2"))
    dataset = load_dataset(folder)
    assert list(dataset.user_ids.external) == ["こんにちは", 'say "hi", you']
    assert dataset.features["image"].values.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert dataset.features["text"].values.dtype == np.float32 and dataset.features["text"].values.sum() == 6


def test_json_lines_with_a_bom_and_unicode_ids(tmp_path: Path) -> None:
    reviews = write(tmp_path, "r.json", "\ufeff" + REVIEW.replace('"U1"', '"ユーザー"'))
    meta = write(tmp_path, "m.json", json.dumps({"asin": "A1", "title": "mug"}) + "\n")
    raw = read_amazon(reviews, meta)
    assert raw.interactions[["user_id", "item_id"]].values.tolist() == [["ユーザー", "A1"]]


# --- raw content: each unusable file is reported for its item, the build goes on --------------------------


def picture(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_unusable_content_is_reported_per_item_and_never_read_outside(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    picture(tmp_path / "secret.png", (0, 0, 0))
    picture(raw / "images" / "café 🍵.png", (200, 20, 20))
    os.symlink(tmp_path / "secret.png", raw / "images" / "link.png")
    write(raw, "images/broken.png", b"\x89PNG\r\n\x1a\nnot really")
    write(raw, "images/empty.png", b"")
    (raw / "images" / "folder.png").mkdir()
    content = {
        "ok": "images/café 🍵.png", "symlink": "images/link.png", "dotdot": "../secret.png",
        "absolute": str(tmp_path / "secret.png"), "corrupt": "images/broken.png", "empty": "images/empty.png",
        "folder": "images/folder.png", "url": "https://example.com/a.png", "gone": "images/none.png",
        "long": "images/" + "x" * 5000 + ".png", "blank": "",
    }
    write(raw, "items.csv", pd.DataFrame({"item_id": list(content), "image": list(content.values())}).to_csv(index=False))
    write(raw, "interactions.csv", "user_id,item_id\n" + "".join(f"u{n},{item}\n" for n, item in enumerate(content)))
    report = build_dataset(read_raw_tables(raw / "interactions.csv", raw / "items.csv"), [IMAGE], tmp_path / "out",
                           BuildOptions(progress=False))
    kinds = {p.item_id: p.kind for p in report.problems}
    assert kinds == {"symlink": "outside", "dotdot": "outside", "absolute": "outside", "corrupt": "unreadable",
                     "empty": "empty-file", "folder": "not-a-file", "url": "url", "gone": "missing-file",
                     "long": "unreadable", "blank": "no-content"}
    missing = np.load(tmp_path / "out" / "image_missing.npy")
    assert missing.tolist() == [item != "ok" for item in content]
    listed = pd.read_csv(tmp_path / "out" / "problems.csv", keep_default_na=False)
    assert sorted(listed["item_id"]) == sorted(kinds)
    features_of = np.load(tmp_path / "out" / "image_feat.npy")
    assert np.allclose(features_of, features_of[0])  # every unusable item holds the only usable item's vector


def test_unicode_folder_and_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "données ユーザー 🍵"
    write(folder, "données 🍵.inter", "userID\titemID\n0\t1\n1\t0\n")
    np.save(folder / "image_feat.npy", np.eye(2, dtype=np.float32))
    dataset = load_dataset(folder)
    assert dataset.name == "données 🍵" and dataset.num_interactions == 2
    with pytest.raises(DataFormatError) as info:
        load_dataset(write(folder, "bad ü.csv", "user_id,item_id\nu1,\n"), DataConfig(format="table"))
    assert info.value.path == str(folder / "bad ü.csv") and info.value.line == 2


# --- issue 17: id spaces with gaps, repeated pairs, and `data build` as a concurrent writer -------------------


def test_mmrec_ids_that_never_occur_are_not_users_or_items(tmp_path: Path) -> None:
    """Users 0, 7 and 99 (no mapping file): 3 users, not 100; items 3 and 40 (no content): 2 items, not 41."""
    write(tmp_path / "d", "d.inter", "userID\titemID\n0\t3\n7\t40\n99\t3\n")
    dataset = load_dataset(tmp_path / "d")
    assert (dataset.num_users, dataset.num_items) == (3, 2)
    assert list(dataset.user_ids.external) == ["0", "7", "99"] and list(dataset.item_ids.external) == ["3", "40"]
    assert [(dataset.user_ids.external[u], dataset.item_ids.external[i])
            for u, i in zip(dataset.users, dataset.items)] == [("0", "3"), ("7", "40"), ("99", "3")]


def test_mmrec_items_with_content_but_no_interaction_stay_in_the_catalogue(tmp_path: Path) -> None:
    """A feature row is an item (a cold one) even if nobody interacted with it; a user id gap is still no user."""
    write(tmp_path / "d", "d.inter", "userID\titemID\n0\t0\n5\t2\n")
    np.save(tmp_path / "d" / "image_feat.npy", np.eye(4, dtype=np.float32))
    dataset = load_dataset(tmp_path / "d")
    assert (dataset.num_users, dataset.num_items) == (2, 4)


def test_mapped_users_without_interactions_are_not_users(tmp_path: Path) -> None:
    write(tmp_path / "d", "d.inter", "userID\titemID\n0\t0\n2\t1\n")
    write(tmp_path / "d", "u_id_mapping.csv", "user_id\tuserID\nann\t0\nbob\t1\ncyd\t2\n")
    dataset = load_dataset(tmp_path / "d")
    assert list(dataset.user_ids.external) == ["ann", "cyd"]
    assert list(dataset.user_ids.external[dataset.users]) == ["ann", "cyd"]


def test_repeats_across_train_and_test_are_only_warned_about_by_data_info(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    repeats(False)(tmp_path)  # writes the folder
    prepared = prepare_data(tmp_path / "d", DataConfig(deduplicate=False), allow_repeats=True)
    assert len(prepared.split.test) == 2
    assert "1 valid/test interactions repeat a training pair (first in test: user '0', item '1')" in caplog.text
    assert len(repeats(True)(tmp_path / "again")().split.test) == 1  # type: ignore[attr-defined]


def _raw(tmp: Path) -> object:
    write(tmp / "raw", "interactions.csv", "user_id,item_id\nu1,a\nu2,b\n")
    write(tmp / "raw", "items.csv", "item_id,title\na,red\nb,blue\n")
    return read_raw_tables(tmp / "raw" / "interactions.csv", tmp / "raw" / "items.csv")


def test_a_build_removes_the_staging_folders_of_killed_builds_only(tmp_path: Path) -> None:
    stale = tmp_path / ".ds.k1ll3d.building"
    other_dataset = tmp_path / ".ds.v2.abc123.building"  # belongs to a dataset named "ds.v2"
    for folder in (stale, other_dataset):
        write(folder, "ds.inter", "half written")
    build_dataset(_raw(tmp_path), [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    assert not stale.exists() and other_dataset.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.v2.abc123.building", "ds", "raw"]


def test_a_build_never_removes_another_datasets_earlier_build(tmp_path: Path) -> None:
    """An interrupted swap of dataset "ds.v2" left its earlier build aside; building "ds" must keep it."""
    aside = tmp_path / ".ds.v2.x9y8z7.old"
    write(aside, "manifest.json", json.dumps({"builder": "modalrec data build"}))
    build_dataset(_raw(tmp_path), [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    assert aside.is_dir()


def test_a_second_build_into_the_same_folder_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    build_dataset(_raw(tmp_path), [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    before = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    (tmp_path / ".ds.lock").write_text(f"{__import__('socket').gethostname()} {os.getpid()}")  # a live builder
    with pytest.raises(ModalrecError, match=r"ds: is being written by .* wait for it to finish"):
        build_dataset(_raw(tmp_path), [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()} == before


def test_a_build_onto_a_read_only_file_system_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    raw = _raw(tmp_path)
    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(ModalrecError) as info:
        build_dataset(raw, [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    assert str(info.value) == f"{tmp_path / 'ds'}: cannot write: Read-only file system (the folder is on a " \
                               "read-only file system)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no lock, no staging left behind


def test_a_build_under_a_file_is_one_error(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    with pytest.raises(ModalrecError, match="interactions.csv/ds: cannot write there"):
        build_dataset(raw, [TITLE], tmp_path / "raw" / "interactions.csv" / "ds",  # type: ignore[arg-type]
                      BuildOptions(progress=False))


def test_a_build_killed_by_kill_9_leaves_nothing_the_next_build_keeps(tmp_path: Path) -> None:
    """A real `data build` process killed mid-build leaves its lock and staging folder; the next build takes the
    lock over (its owner is dead) and removes the staging folder."""
    import signal
    import subprocess
    import sys
    import time

    raw = _raw(tmp_path)
    script = (
        "import sys, time\n"
        "import modalrec.data.build as build\n"
        "def stuck(*args, **kwargs):\n"
        "    time.sleep(120)\n"
        "build.write_dataset = stuck\n"
        "from modalrec.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["data", "build", "--interactions", str(tmp_path / "raw" / "interactions.csv"), "--items",
            str(tmp_path / "raw" / "items.csv"), "--text-cols", "title", "--text-extractor", "tfidf",
            "--out", str(tmp_path / "ds")]
    process = subprocess.Popen([sys.executable, "-c", script, *args])
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(".ds.*.building")) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert list(tmp_path.glob(".ds.*.building"))
    build_dataset(raw, [TITLE], tmp_path / "ds", BuildOptions(progress=False))  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "raw"]
