"""new_items.parquet (issue 17, serving under load): each POST /items rewrites it beside the event loop, so the
rewrite must not turn every stored feature value into a Python float (a conversion that holds the interpreter
lock, stalling all requests for a time growing with the items added), and it must keep the file's contents."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.features.table import FeatureTable
from modalrec.serve.items import NewItemStore, StoredItem

DIMS = {"image": 256, "text": 24}


def item(i: int, rng: np.random.Generator) -> StoredItem:
    return StoredItem(f"new-{i}", None if i % 3 == 0 else f"title {i}", f"/pictures/{i}.png" if i % 2 else None,
                      {"title": f"title {i}"} if i % 3 else {}, {m: rng.random(d, dtype=np.float32)
                                                            for m, d in DIMS.items()}, 1000.0 + i)


def tables(num_items: int = 4) -> dict[str, FeatureTable]:
    return {m: FeatureTable(np.ones((num_items, d), dtype=np.float32), np.zeros(num_items, dtype=bool))
            for m, d in DIMS.items()}


def as_pandas_wrote(items: list[StoredItem], path: Path) -> pd.DataFrame:
    """The file as the store wrote it before, from Python lists through pandas."""
    frame = pd.DataFrame({
        "item_id": [i.item_id for i in items], "title": [i.title or "" for i in items],
        "picture": [i.picture or "" for i in items],
        "texts": [json.dumps(i.texts, sort_keys=True) for i in items], "added_at": [i.added_at for i in items],
        **{f"feat_{m}": [i.features[m].tolist() for i in items] for m in DIMS},
    })
    frame.to_parquet(path, index=False)
    return pd.read_parquet(path)


def test_the_file_holds_what_pandas_wrote_and_loads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = [item(i, rng) for i in range(11)]  # past a doubling of the kept rows
    store = NewItemStore(tmp_path)
    for new in items:
        store.append(new)
    written = pd.read_parquet(store.path)
    expected = as_pandas_wrote(items, tmp_path / "old.parquet")
    assert list(written.columns) == list(expected.columns)
    for column in expected.columns:
        if column.startswith("feat_"):
            assert all(np.array_equal(a, b) for a, b in zip(written[column], expected[column], strict=True))
        else:
            assert written[column].tolist() == expected[column].tolist()
    loaded = NewItemStore(tmp_path).load(tables())
    assert [i.item_id for i in loaded] == [i.item_id for i in items]
    for got, want in zip(loaded, items, strict=True):
        assert all(np.array_equal(got.features[m], want.features[m]) for m in DIMS)
        assert (got.title, got.picture, got.texts, got.added_at) == (want.title, want.picture, want.texts,
                                                                    want.added_at)


def test_appending_after_a_restart_keeps_the_stored_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    first = NewItemStore(tmp_path)
    for i in range(3):
        first.append(item(i, rng))
    again = NewItemStore(tmp_path)
    again.load(tables())
    again.append(item(3, rng))
    stored = pd.read_parquet(again.path)
    assert stored["item_id"].tolist() == ["new-0", "new-1", "new-2", "new-3"]
    assert np.array_equal(stored["feat_image"][1], pd.read_parquet(first.path)["feat_image"][1])


def test_a_rewrite_makes_no_python_float_per_stored_value(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = NewItemStore(tmp_path)
    stored = [item(i, rng) for i in range(2000)]
    store.append(stored[0])
    store._items = stored[:-1]  # as if 1,999 items had been added one by one (each append rewrites them all)
    store._features = {}
    values = sum(len(stored) * d for d in DIMS.values())
    tracemalloc.start()
    try:
        store.append(stored[-1])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a Python float is 24 bytes plus an 8-byte list slot; float64 arrays take 8 bytes a value
    assert peak < 20 * values, f"the rewrite allocated {peak / values:.1f} bytes per stored feature value"
