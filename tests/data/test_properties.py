"""Property-based tests (hypothesis) for every reader and the split functions.

Well-formed input, drawn at random (unicode ids included), is read back losslessly and every interaction lands
in exactly one split; malformed input, made by mutating well-formed files at random, raises only modalrec's own
errors. Example counts are small (``SETTINGS``) so the whole file runs in well under a minute; set
``MODALREC_PROPERTY_EXAMPLES`` for a deeper search.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalrec.config import DataConfig, read_config_file
from modalrec.data import load_dataset
from modalrec.data.build import read_raw_tables
from modalrec.data.dataset import Dataset, IdMap
from modalrec.data.public import read_amazon
from modalrec.data.split import (
    COLD_VALID,
    TEST,
    TRAIN,
    VALID,
    WARM,
    Split,
    choose_cold_items,
    make_split,
    per_user_labels,
)
from modalrec.errors import ModalrecError
from modalrec.train.run import resolve_config

EXAMPLES = int(os.environ.get("MODALREC_PROPERTY_EXAMPLES", "40"))
"""Examples per property; raise it for a deeper search, e.g. MODALREC_PROPERTY_EXAMPLES=1000."""
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Ids: any printable text without surrounding whitespace (readers strip ids) and without control characters.
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(
    lambda text: text == text.strip())


@st.composite
def interaction_log(draw: st.DrawFn, max_rows: int = 30) -> list[tuple[str, str]]:
    """(user id, item id) pairs over small pools, so users and items repeat."""
    users = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    return draw(st.lists(st.tuples(st.sampled_from(users), st.sampled_from(items)), min_size=1, max_size=max_rows))


def pairs_of(dataset: Dataset) -> list[tuple[str, str]]:
    return [(dataset.user_ids.external[u], dataset.item_ids.external[i])
            for u, i in zip(dataset.users, dataset.items, strict=True)]


def only_modalrec_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except ModalrecError:
        pass
    except Exception as exc:  # noqa: BLE001  (the property: nothing else escapes)
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


# --- well-formed input round-trips --------------------------------------------------------------------------


@SETTINGS
@given(log=interaction_log(), suffix=st.sampled_from([".csv", ".tsv", ".parquet"]),
       ratings=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=30, max_size=30))
def test_tables_round_trip_ids_and_ratings(log: list[tuple[str, str]], suffix: str, ratings: list[float]) -> None:
    frame = pd.DataFrame(log, columns=["user_id", "item_id"]).assign(rating=ratings[: len(log)])
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"log{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
        dataset = load_dataset(path, DataConfig(format="table"))
    assert pairs_of(dataset) == log
    assert dataset.ratings is not None and dataset.ratings.tolist() == frame["rating"].tolist()


@SETTINGS
@given(log=interaction_log(), data=st.data())
def test_mmrec_folders_round_trip_through_their_mapping_files(log: list[tuple[str, str]], data: st.DataObject) -> None:
    users = IdMap.from_values(dict.fromkeys(u for u, _ in log))
    items = IdMap.from_values(dict.fromkeys(i for _, i in log))
    labels = data.draw(st.lists(st.sampled_from([TRAIN, VALID, TEST]), min_size=len(log), max_size=len(log)))
    dim = data.draw(st.integers(1, 4))
    values = np.asarray(data.draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=len(items) * dim,
                                           max_size=len(items) * dim)), dtype=np.float32).reshape(len(items), dim)
    with TemporaryDirectory() as tmp:
        folder = Path(tmp) / "d"
        folder.mkdir()
        user_index, item_index = users.lookup(), items.lookup()
        pd.DataFrame({"userID": [user_index[u] for u, _ in log], "itemID": [item_index[i] for _, i in log],
                      "x_label": labels}).to_csv(folder / "d.inter", sep="\t", index=False)
        pd.DataFrame({"user_id": users.external, "userID": range(len(users))}).to_csv(
            folder / "u_id_mapping.csv", sep="\t", index=False)
        pd.DataFrame({"item_id": items.external, "itemID": range(len(items))}).to_csv(
            folder / "i_id_mapping.csv", sep="\t", index=False)
        np.save(folder / "image_feat.npy", values)
        dataset = load_dataset(folder)
    assert pairs_of(dataset) == log
    assert dataset.labels is not None and dataset.labels.tolist() == labels
    assert np.array_equal(dataset.features["image"].values, values)


@settings(SETTINGS, max_examples=max(EXAMPLES // 3, 10))  # each read fits a TF-IDF + SVD of the titles
@given(rows=st.lists(st.tuples(st.integers(1, 2**31), st.integers(1, 5), st.integers(1, 5),
                               st.integers(0, 2**40)), min_size=1, max_size=30))
def test_movielens_ratings_round_trip(rows: list[tuple[int, int, int, int]]) -> None:
    genres = "|".join(["0"] * 18 + ["1"])
    with TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
        (folder / "u.item").write_text("".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|{genres}\n"
                                               for i in range(1, 6)))
        dataset = load_dataset(folder)
    assert pairs_of(dataset) == [(str(u), str(i)) for u, i, _, _ in rows]
    assert dataset.ratings is not None and dataset.ratings.tolist() == [float(r) for _, _, r, _ in rows]
    assert dataset.timestamps is not None and dataset.timestamps.tolist() == [float(t) for *_, t in rows]


@SETTINGS
@given(log=interaction_log(), compressed=st.booleans())
def test_amazon_json_lines_round_trip(log: list[tuple[str, str]], compressed: bool) -> None:
    lines = "".join(json.dumps({"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": n}, ensure_ascii=False)
                    + "\n" for n, (u, i) in enumerate(log))
    meta = "".join(json.dumps({"asin": i, "title": f"item {i}"}) + "\n" for i in dict.fromkeys(i for _, i in log))
    with TemporaryDirectory() as tmp:
        reviews = Path(tmp) / "reviews.json"
        reviews.write_bytes(gzip.compress(lines.encode()) if compressed else lines.encode())
        (Path(tmp) / "meta.json").write_text(meta)
        raw = read_amazon(reviews, Path(tmp) / "meta.json")
    assert list(zip(raw.interactions["user_id"], raw.interactions["item_id"], strict=True)) == log
    assert raw.interactions["timestamp"].tolist() == list(range(len(log)))


@SETTINGS
@given(log=interaction_log(), titles=st.lists(st.text(st.characters(blacklist_characters="\x00\r",
                                                                   blacklist_categories=("Cs",)), max_size=20),
                                              min_size=6, max_size=6))
def test_raw_tables_round_trip(log: list[tuple[str, str]], titles: list[str]) -> None:
    items = list(dict.fromkeys(i for _, i in log))
    with TemporaryDirectory() as tmp:
        pd.DataFrame(log, columns=["user_id", "item_id"]).to_csv(Path(tmp) / "i.csv", index=False)
        pd.DataFrame({"item_id": items, "title": titles[: len(items)]}).to_csv(Path(tmp) / "items.csv", index=False)
        raw = read_raw_tables(Path(tmp) / "i.csv", Path(tmp) / "items.csv")
    assert list(zip(raw.interactions["user_id"], raw.interactions["item_id"], strict=True)) == log
    assert raw.items["item_id"].tolist() == items
    assert raw.items["title"].tolist() == titles[: len(items)]


# --- splits: every interaction in exactly one part ----------------------------------------------------------


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    num_users, num_items = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    n = draw(st.integers(1, 60))
    users = np.asarray(draw(st.lists(st.integers(0, num_users - 1), min_size=n, max_size=n)), dtype=np.int64)
    items = np.asarray(draw(st.lists(st.integers(0, num_items - 1), min_size=n, max_size=n)), dtype=np.int64)
    times = np.asarray(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=np.float64)
    labels = np.asarray(draw(st.lists(st.sampled_from([TRAIN, VALID, TEST]), min_size=n, max_size=n)), dtype=np.int8)
    return Dataset("d", users, items, IdMap.identity(num_users), IdMap.identity(num_items), timestamps=times,
                   labels=labels)


@SETTINGS
@given(dataset=datasets(), method=st.sampled_from(["given", "random", "user_time", "global_time"]),
       seed=st.integers(0, 2**32 - 1), cold=st.sampled_from([0.0, 0.3]))
def test_every_interaction_lands_in_exactly_one_split(dataset: Dataset, method: str, seed: int, cold: float) -> None:
    if method == "given":
        dataset = Dataset(**{**dataset.__dict__, "labels": np.where(np.arange(dataset.num_interactions) == 0, TRAIN,
                                                                    dataset.labels)})  # type: ignore[arg-type]
    config = DataConfig(split=method, split_seed=seed, cold_item_fraction=cold)
    try:
        split = make_split(dataset, config)
    except ModalrecError as exc:
        assert "leaves no training interactions" in str(exc)
        return
    parts = [list(zip(p.users.tolist(), p.items.tolist(), strict=True)) for p in (split.train, split.valid, split.test)]
    kept = Counter(pair for part in parts for pair in part)
    everything = Counter(zip(dataset.users.tolist(), dataset.items.tolist(), strict=True))
    assert sum(len(p) for p in parts) + split.dropped_valid + split.dropped_test == dataset.num_interactions
    assert not kept - everything  # nothing invented, nothing counted twice
    trained = set(split.train.users.tolist())
    assert set(split.valid.users.tolist()) <= trained and set(split.test.users.tolist()) <= trained
    if split.dropped_valid + split.dropped_test == 0:
        assert kept == everything
    again = make_split(dataset, config)
    assert all(np.array_equal(getattr(split, p).items, getattr(again, p).items) for p in ("train", "valid", "test"))
    with TemporaryDirectory() as tmp:
        split.save(Path(tmp) / "split.npz")
        loaded = Split.load(Path(tmp) / "split.npz")
    assert loaded.counts() == split.counts() and np.array_equal(loaded.test.users, split.test.users)


@SETTINGS
@given(users=st.lists(st.integers(0, 5), min_size=1, max_size=80), seed=st.integers(0, 1000),
       ratios=st.sampled_from([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (1.0, 0.0, 0.0)]))
def test_per_user_labels_follow_the_rule_for_every_user(users: list[int], seed: int,
                                                        ratios: tuple[float, float, float]) -> None:
    user_array = np.asarray(users, dtype=np.int64)
    labels = per_user_labels(user_array, np.random.default_rng(seed).permutation(len(users)), ratios)
    assert set(labels.tolist()) <= {TRAIN, VALID, TEST} and len(labels) == len(users)
    for user in set(users):
        mine = labels[user_array == user]
        n = len(mine)
        if n < 10:
            expected_train = max(n - 2, 1)
            expected_valid = 1 if n >= 3 else 0
        else:
            expected_train = int(np.floor(n * ratios[0] + 1e-9))
            expected_valid = int(np.floor(n * ratios[1] + 1e-9))
        assert (mine == TRAIN).sum() == expected_train and (mine == VALID).sum() == expected_valid


@SETTINGS
@given(items=st.lists(st.integers(0, 9), min_size=1, max_size=60), fraction=st.floats(0, 0.9), seed=st.integers(0, 99),
       share=st.sampled_from([0.0, 0.5, 1.0]))
def test_cold_items_are_chosen_whole_and_divided_by_item(items: list[int], fraction: float, seed: int,
                                                         share: float) -> None:
    item_array = np.asarray(items, dtype=np.int64)
    roles = choose_cold_items(item_array, 10, fraction, share, seed)
    cold = np.flatnonzero(roles != WARM)
    assert len(cold) == int(round(fraction * len(set(items)))) and set(cold.tolist()) <= set(items)
    assert (roles == COLD_VALID).sum() == int(share * len(cold) + 1e-9)
    assert np.array_equal(roles, choose_cold_items(item_array, 10, fraction, share, seed))


# --- malformed input: only modalrec's errors ----------------------------------------------------------------

NASTY = ["", ",", "\t", ";", '"', "\n", "\r\n", "\x00", "é", "\ufeff", "🍵", "nan", "-1", "1.5", "1e400",
         "99999999999999999999", "::", "|", "\\", "[", "{", "'"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with a few random insertions, deletions and a possible cut, in a random encoding."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.sampled_from(NASTY) | st.text(max_size=3)) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 5)):]
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16", "utf-16-le"]))
    return text.encode(encoding, errors="replace")


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["csv", "inter", "u.data", "ratings.dat", "mapping", "items"]))
def test_mutated_text_files_raise_only_modalrec_errors(data: st.DataObject, kind: str) -> None:
    valid = {
        "csv": "user_id,item_id,rating,timestamp,x_label\nu1,i1,4,100,0\nu2,i2,5,200,2\nu1,i2,3,300,0\n",
        "inter": "userID\titemID\trating\tx_label\n0\t0\t4\t0\n1\t1\t5\t0\n0\t1\t3\t2\n",
        "u.data": "1\t1\t5\t100\n2\t2\t3\t200\n1\t2\t4\t300\n",
        "ratings.dat": "1::1::5::100\n2::2::3::200\n",
        "mapping": "user_id\tuserID\nalice\t0\nbob\t1\n",
        "items": "item_id,title\ni1,red\ni2,\"blue, dark\"\n",
    }[kind]
    content = data.draw(mutated(valid))
    genres = "|".join(["0"] * 19)
    with TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = {"csv": "interactions.csv", "inter": "d.inter", "u.data": "u.data", "ratings.dat": "ratings.dat",
                "mapping": "u_id_mapping.csv", "items": "items.csv"}[kind]
        (folder / name).write_bytes(content)
        if kind == "mapping":
            (folder / "d.inter").write_text("userID\titemID\n0\t0\n1\t1\n")
        (folder / "u.item").write_text(f"1|A (1995)|01-Jan-1995||u|{genres}\n2|B (1995)|01-Jan-1995||u|{genres}\n")
        (folder / "movies.dat").write_text("1::A (1995)::Drama\n2::B (1995)::Comedy\n")
        if kind == "items":
            (folder / "interactions.csv").write_text("user_id,item_id\nu1,i1\n")
            only_modalrec_errors(lambda: read_raw_tables(folder / "interactions.csv", folder / "items.csv"))
        else:
            only_modalrec_errors(lambda: load_dataset(folder / name if kind == "csv" else folder))


@SETTINGS
@given(data=st.data())
def test_mutated_npy_files_raise_only_modalrec_errors(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(["<f4", ">f8", "<i2", "|b1", "<U3", "<c8", "|O"]))
    shape = data.draw(st.sampled_from([(3, 2), (3,), (2, 2), (3, 0), (3, 1, 2), ()]))
    array = np.zeros(shape, dtype=dtype)
    if array.size and dtype[1] == "f":
        array.flat[data.draw(st.integers(0, array.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, 1.0]))
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    content = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(0, 3))):
        if content:
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    content = content[: data.draw(st.integers(0, len(content)))] if data.draw(st.booleans()) else content
    with TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "d.inter").write_text("userID\titemID\n0\t0\n1\t2\n")
        (folder / "image_feat.npy").write_bytes(bytes(content))
        only_modalrec_errors(lambda: load_dataset(folder))


@SETTINGS
@given(data=st.data(), suffix=st.sampled_from([".toml", ".yaml"]))
def test_mutated_config_files_raise_only_modalrec_errors(data: st.DataObject, suffix: str) -> None:
    valid = ("[data]\nsplit_ratios = [0.8, 0.1, 0.1]\nsplit_seed = 7\n[train]\nepochs = 3\nlearning_rate = 0.01\n"
             "[model]\nembedding_dim = 8\n" if suffix == ".toml" else
             "data:\n  split_ratios: [0.8, 0.1, 0.1]\n  split_seed: 7\ntrain:\n  epochs: 3\n  learning_rate: 0.01\n"
             "model:\n  embedding_dim: 8\n")
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"c{suffix}"
        path.write_bytes(data.draw(mutated(valid)))
        only_modalrec_errors(lambda: read_config_file(path))
        only_modalrec_errors(lambda: resolve_config(tmp, "bpr", config_file=path))


@SETTINGS
@given(data=st.data())
def test_mutated_json_lines_raise_only_modalrec_errors(data: st.DataObject) -> None:
    valid = ('{"reviewerID": "U1", "asin": "A1", "overall": 5.0, "unixReviewTime": 100}\n'
             "{'reviewerID': 'U2', 'asin': 'A1', 'overall': 4, 'unixReviewTime': 200}\n")
    with TemporaryDirectory() as tmp:
        reviews = Path(tmp) / "reviews.json"
        content = data.draw(mutated(valid))
        reviews.write_bytes(gzip.compress(content)[: data.draw(st.integers(0, 80))] if data.draw(st.booleans())
                            else content)
        (Path(tmp) / "meta.json").write_text('{"asin": "A1", "title": "mug"}\n')
        only_modalrec_errors(lambda: read_amazon(reviews, Path(tmp) / "meta.json"))


cells = st.one_of(st.none(), st.text(max_size=4), st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(),
                  st.lists(st.integers(0, 3), max_size=2))


@SETTINGS
@given(column=st.lists(cells, min_size=1, max_size=6), which=st.sampled_from(["user_id", "item_id", "rating"]))
def test_parquet_cells_of_any_type_raise_only_modalrec_errors(column: list[object], which: str) -> None:
    frame = pd.DataFrame({"user_id": ["u"] * len(column), "item_id": ["i"] * len(column), "rating": [1.0] * len(column)})
    try:
        frame[which] = pd.Series(column, dtype=object)
        with TemporaryDirectory() as tmp:
            frame.to_parquet(Path(tmp) / "i.parquet")
            only_modalrec_errors(lambda: load_dataset(Path(tmp) / "i.parquet", DataConfig(format="table")))
    except (ValueError, TypeError, OverflowError) as exc:  # pyarrow cannot store this mix: nothing to read
        assert "modalrec" not in type(exc).__module__
