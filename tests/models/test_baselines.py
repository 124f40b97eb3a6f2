"""The non-neural baselines: popularity counts and item-kNN's cosine neighbours, checked by hand."""

from __future__ import annotations

import pytest
import torch

from modalrec.errors import ConfigError
from modalrec.models import ModelInputs
from modalrec.models.itemknn import ItemKNN, ItemKNNConfig
from modalrec.models.popularity import Popularity, PopularityConfig


def inputs(pairs: list[tuple[int, int]], num_users: int, num_items: int) -> ModelInputs:
    users, items = zip(*pairs, strict=True)
    return ModelInputs(num_users, num_items, torch.tensor(users), torch.tensor(items), {})


def test_popularity_ranks_by_distinct_users() -> None:
    data = inputs([(0, 2), (1, 2), (2, 2), (0, 1), (1, 1), (0, 0), (0, 0)], num_users=3, num_items=4)
    scores = Popularity(PopularityConfig(), data).eval().score(torch.tensor([0, 2]))
    assert scores.tolist() == [[1.0, 2.0, 3.0, 0.0]] * 2  # the repeated (0, 0) counts once


def test_itemknn_scores_are_history_sums_of_cosines() -> None:
    # items 0 and 1 share users 0 and 1; item 2 shares user 1 with both; item 3 only user 2
    data = inputs([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 3)], num_users=3, num_items=4)
    model = ItemKNN(ItemKNNConfig(k=3), data).eval()
    cos_01, cos_02 = 2 / 2, 1 / (2**0.5 * 1)
    scores = model.score(torch.tensor([0]))  # user 0's history: items 0 and 1
    expected = torch.tensor([[cos_01, cos_01, 2 * cos_02, 0.0]])
    assert torch.allclose(scores, expected, atol=1e-6)


def test_itemknn_keeps_only_the_top_k_neighbours() -> None:
    data = inputs([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 3)], num_users=3, num_items=4)
    model = ItemKNN(ItemKNNConfig(k=1), data).eval()
    scores = model.score(torch.tensor([0]))  # user 0's history: items 0 and 1
    assert scores[0, 2].item() == pytest.approx(2**-0.5)  # one neighbour of item 2 counts, not both (k=3: 2/sqrt 2)
    assert scores[0, 0].item() == pytest.approx(1.0)  # item 0 keeps item 1 (cosine 1) and drops item 2


def test_itemknn_refuses_bad_config() -> None:
    with pytest.raises(ConfigError, match=r"'model\.k': must be >= 1, got 0"):
        ItemKNNConfig(k=0)
    with pytest.raises(ConfigError, match=r"'model\.shrink': must be >= 0"):
        ItemKNNConfig(shrink=-1.0)
