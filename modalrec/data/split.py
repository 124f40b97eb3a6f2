"""Train/valid/test splits, reproducible from a seed.

Methods: the given ``x_label`` column; per-user random ratio (MMRec's rule); per-user time order; a global
time cut. Users with no training interaction are dropped from valid and test, as MMRec does, and counted.

Two protocols sit on top of the method, both seeded by ``data.split_seed``:

- *Item cold start* (``data.cold_item_fraction``, ColdRec's protocol): a fraction of the interacted items is
  held out entirely; by item, ``data.cold_valid_share`` of them go to valid (cold-valid), the rest to test
  (cold-test). The method then splits only the warm interactions. :attr:`Split.item_roles` records each
  item's role (:data:`WARM`, :data:`COLD_VALID`, :data:`COLD_TEST`).
- *Sparsity* (``data.train_fraction``): each user keeps a seeded fraction of their training interactions
  (at least one); valid and test stay as they are. The kept sets are nested: a smaller fraction keeps a
  subset of what a larger one keeps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import DataFormatError
from modalrec.io_utils import write_with

TRAIN, VALID, TEST = 0, 1, 2
WARM, COLD_VALID, COLD_TEST = 0, 1, 2  # item roles under the item cold-start protocol
SMALL_USER = 10  # MMRec: a user with fewer interactions gets exactly one valid and one test item


class Pairs(NamedTuple):
    """Parallel arrays of user and item indices."""

    users: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    """Interactions of one dataset divided into train, valid and test."""

    num_users: int
    num_items: int
    train: Pairs
    valid: Pairs
    test: Pairs
    method: str = "given"
    dropped_valid: int = 0  # valid interactions of users with no training interaction
    dropped_test: int = 0
    item_roles: np.ndarray | None = None  # (num_items,) int8 WARM / COLD_VALID / COLD_TEST; None: no cold protocol

    def matrix(self, part: str) -> sp.csr_matrix:
        """The (num_users, num_items) binary CSR matrix of ``part`` (train, valid or test)."""
        pairs: Pairs = getattr(self, part)
        data = np.ones(len(pairs.users), dtype=np.float32)
        matrix = sp.csr_matrix((data, (pairs.users, pairs.items)), shape=(self.num_users, self.num_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def cold_items(self, part: str = "any") -> np.ndarray:
        """(num_items,) bool: the cold items of ``part`` (valid, test or any). Without the cold protocol
        (no :attr:`item_roles`) the cold items are those with no training interaction, for every part."""
        if self.item_roles is None:
            return np.bincount(self.train.items, minlength=self.num_items) == 0
        if part == "any":
            return self.item_roles != WARM
        return self.item_roles == {"valid": COLD_VALID, "test": COLD_TEST}[part]

    def training_counts(self) -> np.ndarray:
        """(num_users,) number of training interactions of each user."""
        return np.bincount(self.train.users, minlength=self.num_users)

    def save(self, path: str | Path) -> None:
        arrays = {f"{part}_{axis}": getattr(getattr(self, part), axis).astype(np.int64)
                  for part in ("train", "valid", "test") for axis in ("users", "items")}
        meta = np.asarray([self.num_users, self.num_items, self.dropped_valid, self.dropped_test])
        if self.item_roles is not None:
            arrays["item_roles"] = self.item_roles.astype(np.int8)
        write_with(path, lambda handle: np.savez_compressed(handle, meta=meta, method=self.method, **arrays), "wb")

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save`; a missing, truncated or foreign file raises DataFormatError."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                num_users, num_items, dropped_valid, dropped_test = (int(x) for x in saved["meta"])
                parts = {p: Pairs(saved[f"{p}_users"], saved[f"{p}_items"]) for p in ("train", "valid", "test")}
                method = str(saved["method"])
                roles = saved["item_roles"] if "item_roles" in saved.files else None
        except Exception as exc:  # zipfile, numpy and OS errors of a damaged file share no base class
            raise DataFormatError(path, f"not a readable split file ({type(exc).__name__}: {exc})") from None
        for name, pairs in parts.items():
            if pairs.users.dtype.kind not in "iu" or pairs.items.dtype.kind not in "iu":
                raise DataFormatError(path, f"the {name} part holds {pairs.users.dtype}/{pairs.items.dtype} values; "
                                            "expected integer indices", field=name)
            if len(pairs.users) != len(pairs.items) or (len(pairs.users) and (
                    pairs.users.min() < 0 or pairs.users.max() >= num_users or
                    pairs.items.min() < 0 or pairs.items.max() >= num_items)):
                raise DataFormatError(path, f"the {name} part does not fit {num_users} users x {num_items} items",
                                      field=name)
        if roles is not None and (roles.shape != (num_items,) or not np.isin(roles, (WARM, COLD_VALID, COLD_TEST)).all()):
            raise DataFormatError(path, f"item_roles must hold 0, 1 or 2 for each of {num_items} items", field="item_roles")
        return cls(num_users, num_items, method=method, dropped_valid=dropped_valid, dropped_test=dropped_test,
                   item_roles=roles, **parts)


def make_split(dataset: Dataset, config: DataConfig) -> Split:
    """Assign every interaction to train, valid or test with ``config.split``, then apply the cold-start
    and sparsity protocols that ``config`` asks for (see the module docstring)."""
    method = config.split
    if method == "auto":
        method = "given" if dataset.labels is not None else "random"
    roles = dataset.item_roles
    if config.cold_item_fraction > 0:
        if roles is not None:
            raise DataFormatError(dataset.source, "the data brings its own cold split; leave data.cold_item_fraction 0")
        roles = choose_cold_items(dataset.items, dataset.num_items, config.cold_item_fraction,
                                  config.cold_valid_share, config.split_seed)
    if roles is None:
        labels = _labels(dataset, method, config)
    else:
        labels = cold_start_labels(dataset, roles, method, config)
    split = _assemble(dataset, labels, method, roles)
    if config.train_fraction < 1.0:
        split = keep_train_fraction(split, config.train_fraction, config.split_seed)
    return split


def choose_cold_items(items: np.ndarray, num_items: int, fraction: float, valid_share: float,
                      seed: int) -> np.ndarray:
    """Item roles: a random ``fraction`` of the interacted items is cold, ``int(valid_share * n)`` of those
    cold-valid and the rest cold-test (ColdRec's rule); every other item is warm.

    Shapes: items (n,) -> (num_items,) int8.
    """
    candidates = np.unique(items)
    rng = np.random.default_rng([seed, 1])
    chosen = rng.choice(candidates, size=int(round(fraction * len(candidates))), replace=False)  # random order
    n_valid = int(valid_share * len(chosen) + 1e-9)
    roles = np.full(num_items, WARM, dtype=np.int8)
    roles[chosen[:n_valid]] = COLD_VALID
    roles[chosen[n_valid:]] = COLD_TEST
    return roles


def cold_start_labels(dataset: Dataset, roles: np.ndarray, method: str, config: DataConfig) -> np.ndarray:
    """Labels under the item cold-start protocol: a cold item's interactions all go to its part (valid or
    test); the warm interactions are split by ``method`` among themselves. When the data brings its own cold
    items (``dataset.item_roles``), a given label may not put a cold item's interaction in train."""
    item_roles = roles[dataset.items]
    warm = item_roles == WARM
    labels = np.where(item_roles == COLD_VALID, VALID, TEST).astype(np.int8)
    if method == "given":
        given = _labels(dataset, method, config)
        bad = ~warm & (given == TRAIN)
        if dataset.item_roles is not None and bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(dataset.source, f"interaction {row + 1} of a cold item is labelled train; cold "
                                  "items may only appear in valid or test")
        labels[warm] = given[warm]
    elif warm.any():
        labels[warm] = _labels(dataset.select(warm), method, config)
    return labels


def keep_train_fraction(split: Split, fraction: float, seed: int) -> Split:
    """``split`` with each user's training interactions cut to ``ceil(fraction * n)`` (at least one), chosen
    by a seeded random order that does not depend on ``fraction``: smaller fractions keep nested subsets.
    Valid and test are unchanged, and so is every user who has training interactions."""
    users = split.train.users
    keys = np.random.default_rng([seed, 2]).random(len(users))
    order = np.lexsort((keys, users))
    counts = np.bincount(users, minlength=split.num_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(users), dtype=np.int64)
    position[order] = np.arange(len(users)) - starts[users[order]]
    keep = position < np.ceil(fraction * counts[users] - 1e-9)
    train = Pairs(split.train.users[keep], split.train.items[keep])
    return dataclasses.replace(split, train=train, method=f"{split.method}+train_fraction={fraction:g}")


def _labels(dataset: Dataset, method: str, config: DataConfig) -> np.ndarray:
    if method == "given":
        if dataset.labels is None:
            raise DataFormatError(dataset.source, "data.split=given needs a split column (x_label) in the data")
        return dataset.labels
    rng = np.random.default_rng(config.split_seed)
    if method == "random":
        return per_user_labels(dataset.users, rng.permutation(dataset.num_interactions), config.split_ratios)
    timestamps = dataset.timestamps
    if timestamps is None:
        raise DataFormatError(dataset.source, f"data.split={method} needs a timestamp column")
    if method == "user_time":
        tiebreak = rng.permutation(dataset.num_interactions)
        return per_user_labels(dataset.users, np.lexsort((tiebreak, timestamps)), config.split_ratios)
    return global_time_labels(timestamps, config.split_ratios)


def per_user_labels(users: np.ndarray, order: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """Label each interaction by its position in ``order`` within its user.

    Per user with n interactions: the first ``floor(n * train_ratio)`` (in ``order``) go to train, the next
    ``floor(n * valid_ratio)`` to valid, the rest to test. A user with fewer than 10 gets one valid and one
    test item (one test item when n == 2, only train when n == 1).
    """
    ordered_users = users[order]
    ranked = np.argsort(ordered_users, kind="stable")  # group by user, keep the order inside each user
    sorted_users = ordered_users[ranked]
    counts = np.bincount(users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(users)) - starts[sorted_users]
    n = counts[sorted_users]
    n_train = np.floor(n * ratios[0] + 1e-9).astype(np.int64)
    n_valid = np.floor(n * ratios[1] + 1e-9).astype(np.int64)
    small = n < SMALL_USER
    n_train = np.where(small, np.maximum(n - 2, 1), n_train)
    n_valid = np.where(small, np.where(n >= 3, 1, 0), n_valid)
    sorted_labels = np.where(position < n_train, TRAIN, np.where(position < n_train + n_valid, VALID, TEST))
    labels = np.empty(len(users), dtype=np.int8)
    labels[order[ranked]] = sorted_labels
    return labels


def global_time_labels(timestamps: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """Cut the time-ordered log at the train and train+valid quantiles (stable for equal times)."""
    order = np.argsort(timestamps, kind="stable")
    n = len(order)
    cut_train = int(np.floor(n * ratios[0] + 1e-9))
    cut_valid = cut_train + int(np.floor(n * ratios[1] + 1e-9))
    labels = np.empty(n, dtype=np.int8)
    labels[order[:cut_train]] = TRAIN
    labels[order[cut_train:cut_valid]] = VALID
    labels[order[cut_valid:]] = TEST
    return labels


def _assemble(dataset: Dataset, labels: np.ndarray, method: str, roles: np.ndarray | None = None) -> Split:
    is_train = labels == TRAIN
    if not is_train.any():
        raise DataFormatError(dataset.source, f"split '{method}' leaves no training interactions")
    has_train = np.zeros(dataset.num_users, dtype=bool)
    has_train[dataset.users[is_train]] = True
    known = has_train[dataset.users]
    parts = {}
    dropped = {}
    for name, label in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        rows = labels == label
        dropped[name] = int((rows & ~known).sum())
        rows &= known
        parts[name] = Pairs(dataset.users[rows], dataset.items[rows])
    return Split(
        dataset.num_users,
        dataset.num_items,
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        method=method,
        dropped_valid=dropped["valid"],
        dropped_test=dropped["test"],
        item_roles=roles,
    )
