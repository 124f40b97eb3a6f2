"""Item cold start (ColdRec's protocol), sparsity fractions, and given cold splits (ColdRec files, cold_items.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modalrec.config import DataConfig
from modalrec.data.coldrec import read_coldrec, write_coldrec_split
from modalrec.data.dataset import Dataset, IdMap
from modalrec.data.prepare import prepare_data
from modalrec.data.readers import load_dataset
from modalrec.data.split import COLD_TEST, COLD_VALID, WARM, Split, make_split
from modalrec.errors import ConfigError, DataFormatError
from modalrec.features.table import FeatureTable
from tests.conftest import write_mmrec


def random_dataset(num_users: int = 60, num_items: int = 80, n: int = 3000, seed: int = 4) -> Dataset:
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, num_users, n), rng.integers(0, num_items, n)], 1), axis=0)
    features = {"image": FeatureTable(rng.normal(size=(num_items, 3)).astype(np.float32), np.zeros(num_items, bool))}
    return Dataset("r", pairs[:, 0], pairs[:, 1], IdMap.identity(num_users), IdMap.identity(num_items),
                   features=features)


def test_cold_items_are_held_out_entirely_and_split_by_item() -> None:
    ds = random_dataset()
    split = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2, split_seed=7))
    roles = split.item_roles
    assert roles is not None
    cold_valid, cold_test = set(np.flatnonzero(roles == COLD_VALID)), set(np.flatnonzero(roles == COLD_TEST))
    assert len(cold_valid) + len(cold_test) == 16 and len(cold_valid) == 8  # 20% of 80, half to valid
    assert not (cold_valid | cold_test) & set(split.train.items.tolist())  # training sees only warm items
    assert set(split.test.items.tolist()) & cold_valid == set() and set(split.valid.items.tolist()) & cold_test == set()
    # every interaction of a cold-valid item (of a user kept) is in valid, of a cold-test item in test
    kept_users = set(split.train.users.tolist())
    for item in cold_valid:
        expected = {(u, item) for u in ds.users[ds.items == item].tolist() if u in kept_users}
        assert expected == {(u, item) for u, i in zip(split.valid.users.tolist(), split.valid.items.tolist()) if i == item}
    # the warm interactions are split per user: each kept user with >= 10 warm interactions has valid ones
    warm_rows = roles[ds.items] == WARM
    counts = np.bincount(ds.users[warm_rows], minlength=ds.num_users)
    warm_valid_users = set(split.valid.users[roles[split.valid.items] == WARM].tolist())
    assert {u for u in range(ds.num_users) if counts[u] >= 10} <= warm_valid_users
    again = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2, split_seed=7))
    other = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2, split_seed=8))
    assert np.array_equal(again.item_roles, roles) and not np.array_equal(other.item_roles, roles)


def test_split_file_keeps_the_item_roles(tmp_path: Path) -> None:
    split = make_split(random_dataset(), DataConfig(split="random", cold_item_fraction=0.3))
    split.save(tmp_path / "s.npz")
    loaded = Split.load(tmp_path / "s.npz")
    assert loaded.item_roles is not None and np.array_equal(loaded.item_roles, split.item_roles)
    plain = make_split(random_dataset(), DataConfig(split="random"))
    plain.save(tmp_path / "p.npz")
    assert Split.load(tmp_path / "p.npz").item_roles is None


@pytest.mark.parametrize("key, value", [("cold_valid_share", 1.5), ("train_fraction", 0.0), ("train_fraction", 1.2)])
def test_bad_protocol_settings_name_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"data.{key}"):
        DataConfig(**{key: value})


def test_train_fractions_are_nested_seeded_and_leave_valid_and_test_alone() -> None:
    ds = random_dataset()
    splits = {f: make_split(ds, DataConfig(split="random", train_fraction=f, split_seed=3)) for f in (0.1, 0.25, 0.5, 1.0)}
    full = splits[1.0]
    full_counts = np.bincount(full.train.users, minlength=ds.num_users)
    previous: set[tuple[int, int]] = set()
    for fraction in (0.1, 0.25, 0.5, 1.0):
        split = splits[fraction]
        assert np.array_equal(split.valid.items, full.valid.items) and np.array_equal(split.test.users, full.test.users)
        kept = set(zip(split.train.users.tolist(), split.train.items.tolist(), strict=True))
        assert previous <= kept  # nested
        previous = kept
        counts = np.bincount(split.train.users, minlength=ds.num_users)
        expected = np.where(full_counts > 0, np.ceil(fraction * full_counts - 1e-9), 0)
        assert np.array_equal(counts, expected)  # ceil(f * n): every user keeps at least one
    again = make_split(ds, DataConfig(split="random", train_fraction=0.25, split_seed=3))
    other = make_split(ds, DataConfig(split="random", train_fraction=0.25, split_seed=4))
    assert np.array_equal(again.train.items, splits[0.25].train.items)
    assert not np.array_equal(np.sort(other.train.items), np.sort(splits[0.25].train.items))


def test_sparsity_applies_to_the_warm_training_set_of_the_cold_protocol() -> None:
    ds = random_dataset()
    cold = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2))
    sparse = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2, train_fraction=0.5))
    assert np.array_equal(cold.item_roles, sparse.item_roles) and np.array_equal(cold.test.items, sparse.test.items)
    assert len(sparse.train) < len(cold.train)


def test_coldrec_round_trip(tmp_path: Path) -> None:
    ds = random_dataset()
    split = make_split(ds, DataConfig(split="random", cold_item_fraction=0.2))
    folder = write_coldrec_split(ds, split, tmp_path / "toy")
    assert sorted(p.name for p in folder.glob("*.csv")) == sorted(
        ["warm_train.csv", "warm_val.csv", "warm_test.csv", "cold_item.csv", "cold_item_val.csv", "cold_item_test.csv"])
    assert (tmp_path / "toy" / "toy_item_content.npy").is_file()
    for path in (tmp_path / "toy", folder):  # the dataset folder or its cold_item folder
        read = prepare_data(path, DataConfig())
        assert read.dataset.num_items == ds.num_items
        assert np.array_equal(read.split.item_roles, split.item_roles)
        for part in ("train", "valid", "test"):
            mine, theirs = getattr(split, part), getattr(read.split, part)
            assert sorted(zip(mine.users.tolist(), mine.items.tolist())) == sorted(
                zip(theirs.users.tolist(), theirs.items.tolist()))
        assert np.allclose(read.dataset.features["image"].values, ds.features["image"].values)


def _coldrec_files(folder: Path, **override: str) -> Path:
    files = {"warm_train.csv": "user,item\n0,0\n0,1\n1,1\n1,2\n", "warm_val.csv": "user,item\n0,2\n",
             "warm_test.csv": "user,item\n1,0\n", "cold_item_val.csv": "user,item\n0,3\n",
             "cold_item_test.csv": "user,item\n1,4\n0,4\n"}
    files.update(override)
    (folder / "cold_item").mkdir(parents=True)
    for name, text in files.items():
        (folder / "cold_item" / name).write_text(text)
    np.save(folder / "x_item_content.npy", np.eye(5, dtype=np.float32))
    return folder


def test_coldrec_files_are_read_with_their_cold_items(tmp_path: Path) -> None:
    ds = read_coldrec(_coldrec_files(tmp_path / "x"), DataConfig())
    assert ds.item_roles is not None and ds.item_roles.tolist() == [WARM, WARM, WARM, COLD_VALID, COLD_TEST]
    assert set(ds.features) == {"content"} and ds.features["content"].values.shape == (5, 5)


@pytest.mark.parametrize("override, where, message", [
    ({"warm_val.csv": "user,item\n0,2\nzero,1\n"}, "warm_val.csv:3", "integer"),
    ({"warm_test.csv": "usr,item\n1,0\n"}, "warm_test.csv:1", "missing column"),
    ({"cold_item_test.csv": "user,item\n1,4\n1,1\n"}, "cold_item_test.csv:3", "item 1 is a cold item"),
    ({"cold_item_val.csv": "user,item\n-1,3\n"}, "cold_item_val.csv:2", "non-negative"),
])
def test_bad_coldrec_files_name_file_and_line(tmp_path: Path, override: dict[str, str], where: str,
                                              message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset(_coldrec_files(tmp_path / "x", **override))
    assert where in str(info.value)


def test_missing_coldrec_file_is_named(tmp_path: Path) -> None:
    folder = _coldrec_files(tmp_path / "x")
    (folder / "cold_item" / "warm_test.csv").unlink()
    with pytest.raises(DataFormatError, match="warm_test.csv"):
        read_coldrec(folder, DataConfig(format="coldrec"))


def test_coldrec_features_with_too_few_rows(tmp_path: Path) -> None:
    folder = _coldrec_files(tmp_path / "x")
    np.save(folder / "x_item_content.npy", np.eye(4, dtype=np.float32))
    with pytest.raises(DataFormatError, match="x_item_content.npy.*4 rows; expected 5"):
        read_coldrec(folder, DataConfig())


def test_mmrec_layout_with_a_cold_items_file(tmp_path: Path) -> None:
    rows = [(0, 0, 0), (0, 1, 0), (0, 3, 1), (1, 1, 0), (1, 2, 0), (1, 4, 2), (2, 0, 0), (2, 2, 0), (2, 3, 1)]
    folder = write_mmrec(tmp_path / "d", rows, features={"image": np.eye(5)})
    (folder / "cold_items.csv").write_text("item_id,part\n3,valid\n4,test\n")
    split = prepare_data(folder, DataConfig()).split
    assert split.item_roles is not None and split.item_roles.tolist() == [WARM, WARM, WARM, COLD_VALID, COLD_TEST]
    (folder / "cold_items.csv").write_text("item_id,part\n3,valid\n4,later\n")
    with pytest.raises(DataFormatError, match=r"cold_items.csv:3: column 'part': expected valid or test"):
        prepare_data(folder, DataConfig())
    (folder / "cold_items.csv").write_text("item_id,part\n1,valid\n")
    with pytest.raises(DataFormatError, match="cold item is labelled train"):
        prepare_data(folder, DataConfig())
    (folder / "cold_items.csv").write_text("item_id,part\n3,valid\n")
    with pytest.raises(DataFormatError, match="brings its own cold split"):
        prepare_data(folder, DataConfig(cold_item_fraction=0.2))
