"""The batched full-ranking evaluator against a naive per-user loop, and its masking and tie rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import modalrec.evaluate.evaluator as evaluator_module
from modalrec.evaluate.evaluator import (
    DotProductScores,
    FullRankingEvaluator,
    JointEvaluator,
    _best_chunks,
    _largest_sorted,
    top_k_deterministic,
)


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
@pytest.mark.parametrize("numpy_selection", [True, False])  # False: torch.topk, as on a GPU
def test_batched_matches_naive_loop(
    seed: int, batch: int, numpy_selection: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluator_module, "_selects_with_numpy", lambda values: numpy_selection)
    scores, train, test = random_problem(seed)
    evaluator = FullRankingEvaluator(test, train, ks=(5, 10), user_batch_size=batch)
    table = torch.from_numpy(scores)
    got = evaluator.evaluate(lambda users: table[users]).mean()
    for k in (5, 10):
        expected = naive_metrics(scores, train, test, k)
        for name, value in expected.items():
            assert got[f"{name}@{k}"] == pytest.approx(value, abs=1e-9), f"{name}@{k}"


@pytest.mark.parametrize("dense_ratio", [0, 10**9])  # 0: compare targets with ranked items; 10**9: target mask
def test_both_ways_of_finding_hits_match_the_naive_loop(dense_ratio: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluator_module, "DENSE_HITS_RATIO", dense_ratio)
    scores, train, test = random_problem(8)
    got = FullRankingEvaluator(test, train, ks=(5, 10)).evaluate(lambda users: torch.from_numpy(scores)[users]).mean()
    for k in (5, 10):
        for name, value in naive_metrics(scores, train, test, k).items():
            assert got[f"{name}@{k}"] == pytest.approx(value, abs=1e-9), f"{name}@{k}"


def test_hits_from_the_target_mask_equal_hits_from_comparisons() -> None:
    generator = torch.Generator().manual_seed(9)
    top = torch.stack([torch.randperm(30, generator=generator)[:6] for _ in range(12)])  # (R, k), distinct per row
    target_rows = torch.randint(0, 12, (40,), generator=generator).sort().values
    target_items = torch.randint(0, 30, (40,), generator=generator)
    keys = torch.unique(target_rows * 30 + target_items)  # a row's targets are distinct
    target_rows, target_items = keys // 30, keys % 30
    mask_hits = evaluator_module._hits(top, target_rows, target_items, 30)  # 12 x 30 <= 8 x T x 6: the mask
    compared = torch.zeros_like(mask_hits)
    for row, item in zip(target_rows.tolist(), target_items.tolist(), strict=True):
        compared[row] |= top[row] == item
    assert torch.equal(mask_hits, compared) and bool(compared.any())


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


def test_small_cpu_blocks_match_the_naive_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    scores, train, test = random_problem(4)
    monkeypatch.setattr(evaluator_module, "CPU_BLOCK_BYTES", 4 * scores.shape[1] * 3)  # three users per block
    got = FullRankingEvaluator(test, train, ks=(5,)).evaluate(lambda users: torch.from_numpy(scores)[users]).mean()
    for name, value in naive_metrics(scores, train, test, 5).items():
        assert got[f"{name}@5"] == pytest.approx(value, abs=1e-9), name


def test_joint_tables_equal_each_evaluator_alone() -> None:
    scores, train, valid = random_problem(5)
    _, _, test = random_problem(6)
    test = sp.csr_matrix(test.toarray() * (train.toarray() == 0))
    evaluators = {"valid": FullRankingEvaluator(valid, train, (5, 10)),
                  "test": FullRankingEvaluator(test, train, (5, 10))}
    score = lambda users: torch.from_numpy(scores)[users]  # noqa: E731
    joint = JointEvaluator(evaluators)
    assert len(joint.groups) == 1  # one ranking serves both splits
    tables = joint.evaluate(score)
    for name, evaluator in evaluators.items():
        alone = evaluator.evaluate(score)
        assert np.array_equal(tables[name].users, alone.users)
        for metric, values in alone.per_user.items():
            assert np.array_equal(tables[name].per_user[metric], values), (name, metric)


def test_a_new_joint_evaluator_over_the_same_evaluators_reuses_their_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    scores, train, valid = random_problem(10)
    _, _, test = random_problem(11)
    evaluators = {"valid": FullRankingEvaluator(valid, train, (5,)), "test": FullRankingEvaluator(test, train, (5,))}
    score = lambda users: torch.from_numpy(scores)[users]  # noqa: E731
    first = JointEvaluator(evaluators).evaluate(score)

    def no_new_plan(*args: object) -> None:
        raise AssertionError("the plan was built again")

    monkeypatch.setattr(evaluator_module, "_plan", no_new_plan)
    second = JointEvaluator(evaluators).evaluate(score)  # as the trainer does at every validation
    for name in evaluators:
        for metric, values in first[name].per_user.items():
            assert np.array_equal(second[name].per_user[metric], values), (name, metric)
    with pytest.raises(AssertionError, match="built again"):  # other evaluators get their own plan
        JointEvaluator({"test": evaluators["test"]}).evaluate(score)


@pytest.mark.parametrize("block_bytes", [4 * 40 * 4, 8 * 2**20])
def test_dot_product_scores_rank_like_their_function(monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    """Computed into the evaluator's buffer, block by block, they give the tables of the plain product, ties
    (integer vectors) included."""
    monkeypatch.setattr(evaluator_module, "CPU_BLOCK_BYTES", block_bytes)
    generator = torch.Generator().manual_seed(7)
    users = torch.randint(-2, 3, (57, 3), generator=generator)
    items = torch.randint(-2, 3, (40, 3), generator=generator)
    dot = DotProductScores(users.float(), items.float())
    _, train, test = random_problem(7)
    evaluator = FullRankingEvaluator(test, train, ks=(5, 10))
    plain = evaluator.evaluate(lambda batch: dot.user_vectors[batch] @ dot.item_vectors.T)
    buffered = evaluator.evaluate(dot)
    for metric, values in plain.per_user.items():
        assert np.array_equal(buffered.per_user[metric], values), metric
    expected = naive_metrics((users @ items.T).float().numpy(), train, test, 10)
    assert buffered.mean()["ndcg@10"] == pytest.approx(expected["ndcg"], abs=1e-9)


def test_cpu_selection_matches_torch_topk() -> None:
    generator = torch.Generator().manual_seed(8)
    values = torch.randn(64, 300, generator=generator)  # distinct values: one right answer
    picked, columns = _largest_sorted(values, 21)
    expected_values, expected_columns = torch.topk(values, 21, dim=1)
    assert torch.equal(picked, expected_values) and torch.equal(columns, expected_columns)
    best, certain = _best_chunks(values, 21)
    assert torch.equal(best.sort(1).values, expected_columns.sort(1).values)
    assert bool(certain.all())
    values[:, :22] = 10.0  # the 21st and 22nd largest are equal: not certain
    assert not bool(_best_chunks(values, 21)[1].any())


@pytest.mark.parametrize("numpy_selection", [True, False])  # False: torch.topk, as on a GPU
@pytest.mark.parametrize("k", [20, 50])
def test_top_k_of_distinct_scores_is_their_sorted_order(
    numpy_selection: bool, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distinct scores settle every row in the chunked search (700 items: 2-4 per chunk), with masked items."""
    monkeypatch.setattr(evaluator_module, "_selects_with_numpy", lambda values: numpy_selection)
    scores = torch.randn(50, 700, generator=torch.Generator().manual_seed(9))
    scores[::3, ::7] = -torch.inf
    expected = torch.argsort(-scores, dim=1, stable=True)[:, :k]
    assert torch.equal(top_k_deterministic(scores, k), expected)
