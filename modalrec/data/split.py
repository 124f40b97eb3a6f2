"""Train/valid/test splits, reproducible from a seed.

Methods: the given ``x_label`` column; per-user random ratio (MMRec's rule); per-user time order; a global
time cut. Users with no training interaction are dropped from valid and test, as MMRec does, and counted.
"""

from __future__ import annotations

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

    def save(self, path: str | Path) -> None:
        arrays = {f"{part}_{axis}": getattr(getattr(self, part), axis).astype(np.int64)
                  for part in ("train", "valid", "test") for axis in ("users", "items")}
        meta = np.asarray([self.num_users, self.num_items, self.dropped_valid, self.dropped_test])
        write_with(path, lambda handle: np.savez_compressed(handle, meta=meta, method=self.method, **arrays), "wb")

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save`; a missing, truncated or foreign file raises DataFormatError."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                num_users, num_items, dropped_valid, dropped_test = (int(x) for x in saved["meta"])
                parts = {p: Pairs(saved[f"{p}_users"], saved[f"{p}_items"]) for p in ("train", "valid", "test")}
                method = str(saved["method"])
        except Exception as exc:  # zipfile, numpy and OS errors of a damaged file share no base class
            raise DataFormatError(path, f"not a readable split file ({type(exc).__name__}: {exc})") from None
        for name, pairs in parts.items():
            if len(pairs.users) != len(pairs.items) or (len(pairs.users) and (
                    pairs.users.min() < 0 or pairs.users.max() >= num_users or
                    pairs.items.min() < 0 or pairs.items.max() >= num_items)):
                raise DataFormatError(path, f"the {name} part does not fit {num_users} users x {num_items} items",
                                      field=name)
        return cls(num_users, num_items, method=method, dropped_valid=dropped_valid, dropped_test=dropped_test,
                   **parts)


def make_split(dataset: Dataset, config: DataConfig) -> Split:
    """Assign every interaction to train, valid or test with ``config.split``."""
    method = config.split
    if method == "auto":
        method = "given" if dataset.labels is not None else "random"
    labels = _labels(dataset, method, config)
    if config.cold_item_fraction > 0:
        labels = hold_out_items(dataset.items, labels, config.cold_item_fraction, config.split_seed)
    return _assemble(dataset, labels, method)


def hold_out_items(items: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Move every interaction of a random ``fraction`` of the interacted items to test (cold-start items)."""
    candidates = np.unique(items)
    rng = np.random.default_rng([seed, 1])
    chosen = rng.choice(candidates, size=int(round(fraction * len(candidates))), replace=False)
    held = labels.copy()
    held[np.isin(items, chosen)] = TEST
    return held


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


def _assemble(dataset: Dataset, labels: np.ndarray, method: str) -> Split:
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
    )
