"""Implicit-feedback threshold, duplicate removal and iterative k-core filtering."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import DataFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterReport:
    """How many interactions each step removed, for the data summary."""

    below_threshold: int = 0
    duplicates: int = 0
    k_core: int = 0
    users_removed: int = 0
    items_removed: int = 0


def filter_dataset(dataset: Dataset, config: DataConfig) -> tuple[Dataset, FilterReport]:
    """Apply the threshold, deduplication and k-core steps that ``config`` asks for, in that order."""
    report: dict[str, int] = {}
    if config.rating_threshold is not None:
        if dataset.ratings is None:
            raise DataFormatError(dataset.source, "data.rating_threshold is set but the data has no rating column")
        keep = dataset.ratings >= config.rating_threshold
        report["below_threshold"] = int((~keep).sum())
        dataset = dataset.select(keep)
    if config.deduplicate:
        keep = first_occurrences(dataset)
        report["duplicates"] = int((~keep).sum())
        dataset = dataset.select(keep)
    if config.min_user_interactions or config.min_item_interactions:
        before = (dataset.num_interactions, dataset.num_users, dataset.num_items)
        dataset = k_core(dataset, config.min_user_interactions, config.min_item_interactions)
        report["k_core"] = before[0] - dataset.num_interactions
        report["users_removed"] = before[1] - dataset.num_users
        report["items_removed"] = before[2] - dataset.num_items
    if dataset.num_interactions == 0:
        raise DataFormatError(dataset.source, "filtering removed every interaction; relax the threshold or k-core")
    return dataset, FilterReport(**report)


def first_occurrences(dataset: Dataset) -> np.ndarray:
    """Mask keeping the earliest (by timestamp, then file order) row of each user-item pair."""
    order = np.arange(dataset.num_interactions)
    if dataset.timestamps is not None:
        order = np.lexsort((order, dataset.timestamps))
    keys = dataset.users[order] * dataset.num_items + dataset.items[order]
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(dataset.num_interactions, dtype=bool)
    keep[order[first]] = True
    return keep


def k_core(dataset: Dataset, min_user: int, min_item: int) -> Dataset:
    """Repeatedly drop users and items with too few interactions until every one left has enough.

    Users and items left with no interactions leave the catalogue; indices are re-numbered contiguously
    and feature rows follow their items.
    """
    keep = np.ones(dataset.num_interactions, dtype=bool)
    while True:
        user_counts = np.bincount(dataset.users[keep], minlength=dataset.num_users)
        item_counts = np.bincount(dataset.items[keep], minlength=dataset.num_items)
        bad = (user_counts[dataset.users] < min_user) | (item_counts[dataset.items] < min_item)
        now = keep & ~bad
        if now.sum() == keep.sum():
            break
        keep = now
    return compact(dataset.select(keep))


def compact(dataset: Dataset) -> Dataset:
    """Re-number users and items that still have interactions to 0..n-1."""
    user_keep = np.unique(dataset.users)
    item_keep = np.unique(dataset.items)
    user_new = np.full(dataset.num_users, -1, dtype=np.int64)
    item_new = np.full(dataset.num_items, -1, dtype=np.int64)
    user_new[user_keep] = np.arange(len(user_keep))
    item_new[item_keep] = np.arange(len(item_keep))
    return dataclasses.replace(
        dataset,
        users=user_new[dataset.users],
        items=item_new[dataset.items],
        user_ids=dataset.user_ids.subset(user_keep),
        item_ids=dataset.item_ids.subset(item_keep),
        features={name: table.subset(item_keep) for name, table in dataset.features.items()},
        item_roles=None if dataset.item_roles is None else dataset.item_roles[item_keep],
    )
