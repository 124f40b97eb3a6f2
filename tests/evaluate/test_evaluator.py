"""The batched full-ranking evaluator against a naive per-user loop, and its masking and tie rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from modalrec.evaluate.evaluator import FullRankingEvaluator, top_k_deterministic


def naive_metrics(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, k: int) -> dict[str, float]:
    """Plain Python: mask, sort by (-score, item), count hits, average over users with targets."""
    totals = {"recall": 0.0, "ndcg": 0.0, "precision": 0.0, "hit": 0.0, "map": 0.0, "mrr": 0.0}
    users = 0
    for u in range(scores.shape[0]):
        targets = set(test[u].indices.tolist())
        if not targets:
            continue
        users += 1
        seen = set(train[u].indices.tolist())
        candidates = [i for i in range(scores.shape[1]) if i not in seen]
        ranked = sorted(candidates, key=lambda i: (-scores[u, i], i))[:k]
        hits = [1 if i in targets else 0 for i in ranked]
        totals["recall"] += sum(hits) / len(targets)
        totals["precision"] += sum(hits) / k
        totals["hit"] += float(any(hits))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(targets), k)))
        totals["ndcg"] += dcg / idcg
        precisions = [sum(hits[: r + 1]) / (r + 1) for r in range(len(hits)) if hits[r]]
        totals["map"] += sum(precisions) / min(len(targets), k)
        totals["mrr"] += next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0)
    return {name: value / users for name, value in totals.items()}


def random_problem(seed: int, users: int = 57, items: int = 40) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    # rounded scores create many ties, which the tie rule must resolve like the naive loop
    scores = np.round(rng.normal(size=(users, items)), 1).astype(np.float32)
    train = sp.csr_matrix((rng.random((users, items)) < 0.2).astype(np.float32))
    test = sp.csr_matrix(((rng.random((users, items)) < 0.1) & (train.toarray() == 0)).astype(np.float32))
    return scores, train, test


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_batched_matches_naive_loop(seed: int, batch: int) -> None:
    scores, train, test = random_problem(seed)
    evaluator = FullRankingEvaluator(test, train, ks=(5, 10), user_batch_size=batch)
    table = torch.from_numpy(scores)
    got = evaluator.evaluate(lambda users: table[users]).mean()
    for k in (5, 10):
        expected = naive_metrics(scores, train, test, k)
        for name, value in expected.items():
            assert got[f"{name}@{k}"] == pytest.approx(value, abs=1e-9), f"{name}@{k}"


def test_only_users_with_targets_are_evaluated() -> None:
    scores, train, test = random_problem(3)
    evaluator = FullRankingEvaluator(test, train, ks=(5,))
    table = evaluator.evaluate(lambda users: torch.from_numpy(scores)[users])
    assert list(table.users) == [u for u in range(test.shape[0]) if test[u].nnz > 0]
    assert len(table.per_user["recall@5"]) == len(table.users)


def test_training_items_are_never_ranked() -> None:
    # the training item has the best score but must be skipped: the test item then ranks first
    scores = torch.tensor([[9.0, 1.0, 5.0]])
    train = sp.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1]], dtype=np.float32))
    metrics = FullRankingEvaluator(test, train, ks=(1,)).evaluate(lambda users: scores[users]).mean()
    assert metrics["hit@1"] == 1.0


def test_ties_break_towards_lower_item_index() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0]])
    assert top_k_deterministic(scores, 3).tolist() == [[1, 2, 3]]
    assert top_k_deterministic(scores, 5).tolist() == [[1, 2, 3, 5, 0]]
    assert top_k_deterministic(torch.zeros(2, 4), 2).tolist() == [[0, 1], [0, 1]]


def test_k_larger_than_catalogue_is_padded_with_misses() -> None:
    scores = torch.tensor([[0.5, 0.1]])
    test = sp.csr_matrix(np.array([[0, 1]], dtype=np.float32))
    train = sp.csr_matrix((1, 2), dtype=np.float32)
    metrics = FullRankingEvaluator(test, train, ks=(5,)).evaluate(lambda users: scores[users]).mean()
    assert metrics["recall@5"] == 1.0
    assert metrics["precision@5"] == pytest.approx(1 / 5)
