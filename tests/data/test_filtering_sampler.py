"""Threshold, deduplication, iterative k-core, and the vectorised negative sampler."""

from __future__ import annotations

import numpy as np
import torch

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset, FeatureTable, IdMap
from modalrec.data.filtering import filter_dataset
from modalrec.data.sampler import NegativeSampler


def dataset(users: list[int], items: list[int], ratings: list[float] | None = None) -> Dataset:
    num_items = max(items) + 1
    return Dataset(
        name="t", users=np.asarray(users), items=np.asarray(items),
        user_ids=IdMap.from_values(f"u{u}" for u in range(max(users) + 1)),
        item_ids=IdMap.from_values(f"i{i}" for i in range(num_items)),
        ratings=None if ratings is None else np.asarray(ratings, dtype=float),
        features={"image": FeatureTable(np.arange(num_items, dtype=np.float32)[:, None], np.zeros(num_items, bool))},
    )


def test_threshold_and_duplicates() -> None:
    ds = dataset([0, 0, 0, 1], [0, 0, 1, 1], ratings=[5, 4, 2, 4])
    out, report = filter_dataset(ds, DataConfig(rating_threshold=4))
    assert (report.below_threshold, report.duplicates) == (1, 1)
    assert list(zip(out.users.tolist(), out.items.tolist())) == [(0, 0), (1, 1)]


def test_k_core_is_iterative_and_keeps_ids_and_features_aligned() -> None:
    # 2-core: item 3 has one interaction; removing it leaves user 2 with one, which then goes, and so
    # does item 2 (its other interaction was user 2's).
    users = [0, 0, 1, 1, 2, 2, 0, 1]
    items = [0, 1, 0, 1, 2, 3, 2, 4]
    out, report = filter_dataset(dataset(users, items), DataConfig(min_user_interactions=2, min_item_interactions=2))
    assert list(out.item_ids.external) == ["i0", "i1"]
    assert list(out.user_ids.external) == ["u0", "u1"]
    assert out.features["image"].values[:, 0].tolist() == [0.0, 1.0]
    assert report.users_removed == 1 and report.items_removed == 3
    assert np.bincount(out.users).min() >= 2 and np.bincount(out.items).min() >= 2


def test_sampler_never_returns_a_training_positive() -> None:
    rng = np.random.default_rng(0)
    users = torch.from_numpy(rng.integers(0, 20, 400))
    items = torch.from_numpy(rng.integers(0, 15, 400))
    sampler = NegativeSampler(15, users, items)
    positives = set(zip(users.tolist(), items.tolist()))
    query = torch.arange(20).repeat(200)
    negatives = sampler.sample(query, torch.Generator().manual_seed(0))
    assert not any((u, i) in positives for u, i in zip(query.tolist(), negatives.tolist()))


def test_sampler_is_uniform_over_negatives() -> None:
    # user 0 owns items 0..4 of 10: negatives must be spread evenly over items 5..9
    sampler = NegativeSampler(10, torch.zeros(5, dtype=torch.long), torch.arange(5))
    draws = sampler.sample(torch.zeros(20000, dtype=torch.long), torch.Generator().manual_seed(1))
    counts = torch.bincount(draws, minlength=10)
    assert counts[:5].sum() == 0
    assert counts[5:].min() > 3700 and counts[5:].max() < 4300


def test_sampler_draws_only_from_candidates() -> None:
    users = torch.tensor([0, 0, 1])
    items = torch.tensor([0, 1, 2])
    sampler = NegativeSampler(10, users, items, candidates=torch.tensor([0, 1, 2, 3]))
    draws = sampler.sample(torch.tensor([0, 1]).repeat(500), torch.Generator().manual_seed(0))
    assert set(draws[0::2].tolist()) == {2, 3} and set(draws[1::2].tolist()) == {0, 1, 3}
