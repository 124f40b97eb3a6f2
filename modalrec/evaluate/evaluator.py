"""Full-ranking evaluation: every item is scored for every user, training items are masked.

Users are scored in batches of ``user_batch_size``, so memory is bounded by that many rows of scores.
Ties are broken deterministically: among equal scores the lower item index ranks first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from modalrec.evaluate.metrics import ranking_metrics

ScoreFn = Callable[[Tensor], Tensor]  # (B,) user indices -> (B, num_items) scores
MAX_CHUNK_SIZE = 16  # items per chunk in _chunked_top; larger chunks measured slower at 63,001 items


@dataclass(frozen=True)
class MetricTable:
    """Per-user metric values (for significance tests) and their means."""

    users: np.ndarray  # (n,) evaluated user indices
    per_user: dict[str, np.ndarray]  # metric name -> (n,) values

    def mean(self) -> dict[str, float]:
        return {name: float(values.mean()) if len(values) else 0.0 for name, values in self.per_user.items()}


def top_k_deterministic(scores: Tensor, k: int) -> Tensor:
    """Indices of the k best items per row, by score descending then item index ascending.

    The k + 1 best scores of each row come from :func:`_chunked_top`; a row whose k + 1 best scores are
    distinct is settled by them. Rows with a tie among them, a NaN, or an uncertain candidate set go through
    the exact tie rule, :func:`_top_k_with_ties`.

    Shapes: scores (B, N) -> (B, min(k, N)).
    """
    k = min(k, scores.shape[1])
    values, indices, certain = _chunked_top(scores, min(k + 1, scores.shape[1]))
    settled = certain & (values[:, :-1] > values[:, 1:]).all(1)  # False on a tie or a NaN
    top = indices[:, :k]
    if bool(settled.all()):
        return top
    unsettled = torch.nonzero(~settled).squeeze(1)
    top[unsettled] = _top_k_with_ties(scores[unsettled], k)
    return top


def _chunked_top(scores: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``width`` largest scores per row, searched only in the ``width`` chunks with the largest maxima.

    Items are dealt into chunks (chunk j holds items j, j + C, j + 2C, ... for C chunks); every item at least
    as large as the width-th largest chunk maximum lies in those chunks, and so do the width largest scores.
    ``torch.topk`` then runs on C maxima and width x chunk-size candidates instead of N scores per row
    (measured 1.2x faster than one ``torch.topk`` at 7,050 items, 2x at 63,001). ``certain`` is False for rows where the width-th and (width+1)-th
    chunk maxima are equal, so that the candidate set may miss a tied item.

    Shapes: scores (B, N) -> values (B, width), indices (B, width), certain (B,).
    """
    rows, num_items = scores.shape
    chunk_size = 2 ** int(math.log2(max(math.sqrt(num_items / width), 1.0)))
    chunk_size = min(chunk_size, MAX_CHUNK_SIZE)
    num_chunks = num_items // chunk_size
    if chunk_size == 1 or num_chunks <= width:
        values, indices = torch.topk(scores, width, dim=1)
        return values, indices, torch.ones(rows, dtype=torch.bool, device=scores.device)
    dealt = chunk_size * num_chunks
    maxima = scores[:, :dealt].view(rows, chunk_size, num_chunks).amax(1)  # (B, C)
    best, best_chunks = torch.topk(maxima, width + 1, dim=1)
    certain = best[:, width - 1] > best[:, width]
    offsets = num_chunks * torch.arange(chunk_size, device=scores.device)
    candidates = (best_chunks[:, :width, None] + offsets).reshape(rows, width * chunk_size)
    if dealt < num_items:  # the last few items belong to no chunk: always candidates
        rest = torch.arange(dealt, num_items, device=scores.device).expand(rows, -1)
        candidates = torch.cat([candidates, rest], dim=1)
    values, positions = torch.topk(torch.gather(scores, 1, candidates), width, dim=1)
    return values, torch.gather(candidates, 1, positions), certain


def _top_k_with_ties(scores: Tensor, k: int) -> Tensor:
    """:func:`top_k_deterministic` for rows with tied scores: among equal scores the lower index wins.

    Shapes: scores (B, N) -> (B, k), k <= N.
    """
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # (B, 1)
    above = scores > kth
    tied = scores == kth
    needed = k - above.sum(1, keepdim=True)
    take_tied = tied & (torch.cumsum(tied.int(), 1) <= needed)
    selected = above | take_tied  # exactly k per row, in ascending item order
    indices = selected.nonzero()[:, 1].view(scores.shape[0], k)
    chosen = torch.gather(scores, 1, indices)
    order = torch.sort(chosen, dim=1, descending=True, stable=True).indices
    return torch.gather(indices, 1, order)


@dataclass(frozen=True)
class _UserBatch:
    """One batch of users to score, with the flat positions ``row * num_items + item`` of the items never to
    recommend in its (B, num_items) score block."""

    users: Tensor  # (B,) user indices
    excluded: Tensor  # (X,) positions


@dataclass(frozen=True)
class _SplitRows:
    """The rows of a batch whose users have targets in one split, and those targets."""

    rows: Tensor  # (R,) row numbers in the batch, ascending
    targets: Tensor  # (T,) sorted positions row * num_items + item of the targets
    num_relevant: Tensor  # (R,) targets per row


Plan = list[tuple[_UserBatch, dict[str, _SplitRows]]]


class FullRankingEvaluator:
    """Ranks all items for users who have targets, with known positives masked.

    Args:
        targets: (num_users, num_items) CSR of the items to find (valid or test).
        exclude: (num_users, num_items) CSR of items never to recommend (training, and optionally valid).
        ks: cut-offs.
        user_batch_size: users scored at once.
    """

    def __init__(
        self, targets: sp.csr_matrix, exclude: sp.csr_matrix, ks: tuple[int, ...], user_batch_size: int = 1024
    ) -> None:
        self.targets = _binary_csr(targets)
        self.exclude = _binary_csr(exclude)
        self.ks = tuple(sorted(set(ks)))
        self.user_batch_size = user_batch_size
        self.users = np.flatnonzero(np.diff(self.targets.indptr) > 0)
        self._plan: Plan | None = None

    def evaluate(self, score: ScoreFn, device: torch.device | str = "cpu") -> MetricTable:
        """Score, mask, rank and measure every user with at least one target."""
        if self._plan is None:
            self._plan = _plan({"": self}, self.users)
        return _rank_and_measure({"": self}, self._plan, score, device)[""]


class JointEvaluator:
    """Several splits evaluated together. Splits that exclude the same items and use the same cut-offs (valid
    and test, unless valid items are also masked at test time) share one scoring and one ranking of each
    user, which about halves a valid + test pass. The tables equal those of each evaluator on its own.

    Args:
        evaluators: split name -> its evaluator.
    """

    def __init__(self, evaluators: Mapping[str, FullRankingEvaluator]) -> None:
        self.evaluators = dict(evaluators)
        self.groups: list[dict[str, FullRankingEvaluator]] = []
        for name, evaluator in self.evaluators.items():
            group = next((g for g in self.groups if _same_ranking(next(iter(g.values())), evaluator)), None)
            if group is None:
                self.groups.append({name: evaluator})
            else:
                group[name] = evaluator
        self._plans: dict[int, Plan] = {}

    def evaluate(self, score: ScoreFn, device: torch.device | str = "cpu") -> dict[str, MetricTable]:
        """``{split: MetricTable}``, as ``{split: evaluator.evaluate(score, device)}`` would give."""
        tables: dict[str, MetricTable] = {}
        for index, group in enumerate(self.groups):
            if index not in self._plans:
                self._plans[index] = _plan(group, np.unique(np.concatenate([e.users for e in group.values()])))
            tables.update(_rank_and_measure(group, self._plans[index], score, device))
        return {name: tables[name] for name in self.evaluators}


def _same_ranking(a: FullRankingEvaluator, b: FullRankingEvaluator) -> bool:
    """Whether two evaluators rank every user alike: the same excluded items, cut-offs and batch size."""
    return (
        a.ks == b.ks
        and a.user_batch_size == b.user_batch_size
        and a.exclude.shape == b.exclude.shape
        and np.array_equal(a.exclude.indptr, b.exclude.indptr)
        and np.array_equal(a.exclude.indices, b.exclude.indices)
    )


def _plan(group: Mapping[str, FullRankingEvaluator], users: np.ndarray) -> Plan:
    """``users`` in batches, each with its excluded positions and, per split, its rows with targets."""
    first = next(iter(group.values()))
    size = first.user_batch_size
    excluded = _batch_positions(first.exclude, users, size)
    targets = {name: _batch_positions(e.targets, users, size) for name, e in group.items()}
    plan = []
    for number, start in enumerate(range(0, len(users), size)):
        batch_users = users[start : start + size]
        splits = {}
        for name, evaluator in group.items():
            counts = np.diff(evaluator.targets.indptr)[batch_users]
            rows = np.flatnonzero(counts > 0)
            splits[name] = _SplitRows(torch.from_numpy(rows), targets[name][number], torch.from_numpy(counts[rows]))
        plan.append((_UserBatch(torch.from_numpy(batch_users), excluded[number]), splits))
    return plan


@torch.no_grad()
def _rank_and_measure(
    group: Mapping[str, FullRankingEvaluator], plan: Plan, score: ScoreFn, device: torch.device | str
) -> dict[str, MetricTable]:
    """Score, mask and rank each batch once; measure every split of the group on its own rows."""
    first = next(iter(group.values()))
    num_items, ks, max_k = first.targets.shape[1], first.ks, max(first.ks)
    collected: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in group}
    for batch, splits in plan:
        scores = score(batch.users.to(device)).float().contiguous()
        scores.view(-1).index_fill_(0, batch.excluded.to(scores.device), -torch.inf)
        top = top_k_deterministic(scores, max_k)
        for name, part in splits.items():
            rows = part.rows.to(top.device)
            hits = _find(top[rows], rows, part.targets.to(top.device), num_items)
            hits = torch.nn.functional.pad(hits, (0, max_k - hits.shape[1]))  # catalogues smaller than k
            for metric, values in ranking_metrics(hits, part.num_relevant.to(top.device), ks).items():
                collected[name].setdefault(metric, []).append(values.cpu().numpy())
    empty = {metric: np.zeros(0) for metric in ranking_metrics(torch.zeros(0, max_k), torch.ones(0), ks)}
    return {
        name: MetricTable(evaluator.users, {m: np.concatenate(v) for m, v in collected[name].items()} or empty)
        for name, evaluator in group.items()
    }


def _find(top: Tensor, rows: Tensor, targets: Tensor, num_items: int) -> Tensor:
    """(R, k) bool: whether item ``top[r, j]`` of batch row ``rows[r]`` is one of the sorted target positions
    (a binary search)."""
    if len(targets) == 0:
        return torch.zeros(top.shape, dtype=torch.bool, device=top.device)
    positions = rows.unsqueeze(1) * num_items + top
    found = torch.searchsorted(targets, positions).clamp_(max=len(targets) - 1)
    return targets[found] == positions


def _batch_positions(matrix: sp.csr_matrix, users: np.ndarray, batch_size: int) -> list[Tensor]:
    """For each batch of ``users``, the flat positions ``row_in_batch * num_items + item`` of their stored
    entries, in ascending order."""
    sub = matrix[users]
    counts = np.diff(sub.indptr)
    rows = np.repeat(np.arange(len(users)) % batch_size, counts)
    positions = torch.from_numpy(rows * matrix.shape[1] + sub.indices.astype(np.int64))
    bounds = sub.indptr[np.arange(0, len(users), batch_size)[1:]]
    return list(torch.tensor_split(positions, torch.from_numpy(bounds.astype(np.int64))))


def _binary_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A canonical CSR copy (sorted, duplicates merged) without explicit zeros, so that only stored non-zeros
    count as present."""
    result = matrix.tocsr(copy=True)
    result.sum_duplicates()
    result.eliminate_zeros()
    return result
