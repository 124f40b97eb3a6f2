"""Metric values against cases computed by hand, with the arithmetic written out."""

from __future__ import annotations

import math

import pytest
import torch

from modalrec.evaluate.metrics import FUNCTIONS, METRICS, parse_metric_name, ranking_metrics


def metrics_for(hits: list[list[int]], relevant: list[int], ks: tuple[int, ...]) -> dict[str, list[float]]:
    values = ranking_metrics(torch.tensor(hits, dtype=torch.float32), torch.tensor(relevant), ks)
    return {name: tensor.tolist() for name, tensor in values.items()}


def test_single_user_hits_at_ranks_one_and_three() -> None:
    # ranked list: hit, miss, hit, miss, miss; the user has 3 relevant items
    m = metrics_for([[1, 0, 1, 0, 0]], [3], (1, 3, 5))
    assert m["recall@1"] == pytest.approx([1 / 3])
    assert m["recall@3"] == pytest.approx([2 / 3])
    assert m["precision@3"] == pytest.approx([2 / 3])
    assert m["precision@5"] == pytest.approx([2 / 5])
    assert m["hit@1"] == [1.0]
    dcg3 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg3 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@3"] == pytest.approx([dcg3 / idcg3])
    # ideal DCG at K=5 still places only min(|T|, K) = 3 hits
    assert m["ndcg@5"] == pytest.approx([dcg3 / idcg3])
    # MAP@3: precision at the hit ranks (1/1 and 2/3) summed, over min(3, 3)
    assert m["map@3"] == pytest.approx([(1 + 2 / 3) / 3])
    assert m["mrr@5"] == [1.0]


def test_first_hit_late_and_no_hits() -> None:
    m = metrics_for([[0, 0, 0, 1], [0, 0, 0, 0]], [1, 2], (2, 4))
    assert m["mrr@4"] == pytest.approx([1 / 4, 0.0])
    assert m["mrr@2"] == [0.0, 0.0]
    assert m["hit@4"] == [1.0, 0.0]
    assert m["ndcg@4"] == pytest.approx([(1 / math.log2(5)) / 1.0, 0.0])
    # MAP@4 with one relevant item found at rank 4: precision@4 = 1/4, divided by min(1, 4)
    assert m["map@4"] == pytest.approx([1 / 4, 0.0])
    assert m["recall@4"] == [1.0, 0.0]


def test_ndcg_ideal_uses_min_of_relevant_and_k() -> None:
    # 10 relevant items, all of the top 2 are hits: perfect at K=2
    m = metrics_for([[1, 1]], [10], (2,))
    assert m["ndcg@2"] == pytest.approx([1.0])
    assert m["recall@2"] == pytest.approx([0.2])


@pytest.mark.parametrize("name", ["recall", "ndcg@", "foo@10", "recall@0", "recall@x"])
def test_bad_metric_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="METRIC@K"):
        parse_metric_name(name)


def test_parse_metric_name() -> None:
    assert parse_metric_name("ndcg@20") == ("ndcg", 20)


@pytest.mark.parametrize("width", [1, 10, 50])
def test_ranking_metrics_equal_each_metric_function_bit_for_bit(width: int) -> None:
    """recall, precision, hit and mrr come from shared running counts; they must equal the functions exactly,
    rows without hits included (the evaluator pads the ranked lists to the largest cut-off)."""
    generator = torch.Generator().manual_seed(width)
    hits = (torch.rand(40, width, generator=generator) < 0.2).to(torch.float64)
    hits[:5] = 0.0  # users with no hit
    num_relevant = torch.randint(1, 12, (40,), generator=generator).to(torch.float64)
    ks = tuple(k for k in (1, 5, 10, 20, 50) if k <= width)
    values = ranking_metrics(hits, num_relevant, ks)
    assert set(values) == {f"{name}@{k}" for name in METRICS for k in ks}
    for name in METRICS:
        for k in ks:
            expected = FUNCTIONS[name](hits, num_relevant, k)
            assert torch.equal(values[f"{name}@{k}"], expected), f"{name}@{k}"
