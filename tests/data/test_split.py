"""Splits: MMRec's per-user rule, time orders, reproducibility and users absent from training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset, IdMap
from modalrec.data.split import Split, make_split, per_user_labels
from modalrec.errors import DataFormatError


def make_dataset(users: list[int], items: list[int], timestamps: list[float] | None = None,
                 labels: list[int] | None = None) -> Dataset:
    return Dataset(
        name="t",
        users=np.asarray(users),
        items=np.asarray(items),
        user_ids=IdMap.identity(max(users) + 1),
        item_ids=IdMap.identity(max(items) + 1),
        timestamps=None if timestamps is None else np.asarray(timestamps, dtype=float),
        labels=None if labels is None else np.asarray(labels, dtype=np.int8),
    )


def test_mmrec_rule_counts_per_user() -> None:
    # user 0: 20 interactions -> 16/2/2; user 1: 5 -> 3/1/1; user 2: 2 -> 1/0/1; user 3: 1 -> 1/0/0
    users = np.repeat([0, 1, 2, 3], [20, 5, 2, 1])
    labels = per_user_labels(users, np.random.default_rng(0).permutation(len(users)), (0.8, 0.1, 0.1))
    for user, expected in {0: (16, 2, 2), 1: (3, 1, 1), 2: (1, 0, 1), 3: (1, 0, 0)}.items():
        got = tuple(int(((users == user) & (labels == part)).sum()) for part in (0, 1, 2))
        assert got == expected, user


def test_random_split_is_reproducible_and_seed_dependent() -> None:
    rng = np.random.default_rng(1)
    ds = make_dataset(list(rng.integers(0, 30, 600)), list(rng.integers(0, 50, 600)))
    a = make_split(ds, DataConfig(split="random", split_seed=7))
    b = make_split(ds, DataConfig(split="random", split_seed=7))
    c = make_split(ds, DataConfig(split="random", split_seed=8))
    assert np.array_equal(a.test.items, b.test.items) and np.array_equal(a.train.users, b.train.users)
    assert not np.array_equal(a.test.items, c.test.items)
    assert len(a.train) + len(a.valid) + len(a.test) == 600  # every interaction lands in exactly one part


def test_user_time_puts_latest_in_test() -> None:
    users = [0] * 10
    ds = make_dataset(users, list(range(10)), timestamps=[5, 1, 9, 3, 7, 2, 8, 4, 6, 0])
    split = make_split(ds, DataConfig(split="user_time"))
    assert split.test.items.tolist() == [2]  # timestamp 9
    assert split.valid.items.tolist() == [6]  # timestamp 8
    assert sorted(split.train.items.tolist()) == [0, 1, 3, 4, 5, 7, 8, 9]


def test_global_time_cut() -> None:
    ds = make_dataset([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], list(range(10)), timestamps=list(range(10)))
    split = make_split(ds, DataConfig(split="global_time"))
    assert sorted(split.train.items.tolist()) == list(range(8))
    assert split.valid.items.tolist() == [8] and split.test.items.tolist() == [9]


def test_users_absent_from_train_are_dropped_and_counted() -> None:
    ds = make_dataset([0, 0, 1, 1], [0, 1, 0, 1], labels=[0, 2, 1, 2])
    split = make_split(ds, DataConfig())
    assert split.method == "given"
    assert split.test.users.tolist() == [0]
    assert (split.dropped_valid, split.dropped_test) == (1, 1)


def test_split_leaving_no_training_data() -> None:
    ds = make_dataset([0, 1], [0, 1], labels=[1, 2])
    with pytest.raises(DataFormatError, match="no training interactions"):
        make_split(ds, DataConfig())


def test_time_split_without_timestamps() -> None:
    with pytest.raises(DataFormatError, match="timestamp"):
        make_split(make_dataset([0], [0]), DataConfig(split="user_time"))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    split = make_split(make_dataset(list(rng.integers(0, 9, 90)), list(rng.integers(0, 20, 90))), DataConfig())
    split.save(tmp_path / "s.npz")
    loaded = Split.load(tmp_path / "s.npz")
    assert loaded.counts() == split.counts() and loaded.method == "random"
    assert np.array_equal(loaded.test.items, split.test.items)


def test_cold_item_fraction_moves_whole_items_to_cold_valid_and_cold_test() -> None:
    rng = np.random.default_rng(4)
    ds = make_dataset(list(rng.integers(0, 40, 2000)), list(rng.integers(0, 50, 2000)))
    split = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2))
    cold = set(range(50)) - set(split.train.items.tolist())
    assert len(cold) == 10  # 20% of 50 items never appear in train
    cold_valid = cold - set(split.test.items.tolist())
    cold_test = cold - set(split.valid.items.tolist())
    assert len(cold_valid) == len(cold_test) == 5 and cold_valid | cold_test == cold  # by item: half each
    assert len(split.train) + len(split.valid) + len(split.test) == 2000
