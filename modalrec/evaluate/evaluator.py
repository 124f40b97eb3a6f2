"""Full-ranking evaluation: every item is scored for every user, training items are masked.

Users are scored in batches of ``user_batch_size``, so memory is bounded by that many rows of scores; on the
CPU a batch holds at most ``CPU_BLOCK_BYTES`` of scores, so that they are still in the cache when ranked.
Ties are broken deterministically: among equal scores the lower item index ranks first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from modalrec.config import EvalConfig
from modalrec.data.split import Split
from modalrec.evaluate.metrics import ranking_metrics
from modalrec.models.scoring import DotProductScores, ScoreFn

MAX_CHUNK_SIZE = 16  # items per chunk in _chunked_top; larger chunks were slower on large catalogues
CPU_BLOCK_BYTES = 8 * 2**20  # scores per block of users on the CPU
DENSE_HITS_RATIO = 8  # _hits fills a target mask when it is at most this many times its T x k comparisons


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
    The selection then runs on C maxima and width x chunk-size candidates instead of N scores per row,
    which beats one ``torch.topk`` over all N, the more so the larger the catalogue. ``certain`` is False for
    rows where the width-th and (width+1)-th chunk maxima are equal, so that the candidate set may miss a
    tied item.

    Shapes: scores (B, N) -> values (B, width), indices (B, width), certain (B,).
    """
    rows, num_items = scores.shape
    chunk_size = 2 ** int(math.log2(max(math.sqrt(num_items / width), 1.0)))
    chunk_size = min(chunk_size, MAX_CHUNK_SIZE)
    num_chunks = num_items // chunk_size
    if chunk_size == 1 or num_chunks <= width:
        values, indices = _largest_sorted(scores, width)
        return values, indices, torch.ones(rows, dtype=torch.bool, device=scores.device)
    dealt = chunk_size * num_chunks
    maxima = scores[:, :dealt].view(rows, chunk_size, num_chunks).amax(1)  # (B, C)
    best_chunks, certain = _best_chunks(maxima, width)
    offsets = num_chunks * torch.arange(chunk_size, device=scores.device)
    candidates = (best_chunks[:, :, None] + offsets).reshape(rows, width * chunk_size)
    if dealt < num_items:  # the last few items belong to no chunk: always candidates
        rest = torch.arange(dealt, num_items, device=scores.device).expand(rows, -1)
        candidates = torch.cat([candidates, rest], dim=1)
    values, positions = _largest_sorted(torch.gather(scores, 1, candidates), width)
    return values, torch.gather(candidates, 1, positions), certain


def _best_chunks(maxima: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The ``width`` columns with the largest values per row, in no particular order, and whether the
    width-th largest value exceeds the (width+1)-th.

    On the CPU numpy's introselect does it, faster there than ``torch.topk``.

    Shapes: maxima (B, C), C > width -> (B, width), (B,).
    """
    if not _selects_with_numpy(maxima):
        best, chunks = torch.topk(maxima, width + 1, dim=1)
        return chunks[:, :width], best[:, width - 1] > best[:, width]
    array, count = maxima.detach().numpy(), maxima.shape[1]
    order = np.argpartition(array, count - width - 1, axis=1)  # one kth: one partition pass, not two
    next_best = np.take_along_axis(array, order[:, count - width - 1 : count - width], axis=1)[:, 0]
    columns = order[:, count - width :]
    certain = np.take_along_axis(array, columns, axis=1).min(1) > next_best
    return torch.from_numpy(columns), torch.from_numpy(certain)


def _largest_sorted(values: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """``torch.topk(values, width, dim=1)``: the largest values per row, descending, and their columns. On
    the CPU an introselect (numpy's, faster there than ``torch.topk``) picks them and only those are sorted.
    Among equal values either column may come first.

    Shapes: values (B, L), L >= width -> (B, width), (B, width).
    """
    if not _selects_with_numpy(values):
        return torch.topk(values, width, dim=1)
    array, count = values.detach().numpy(), values.shape[1]
    columns = torch.from_numpy(np.argpartition(array, count - width, axis=1)[:, count - width :])
    picked, order = torch.gather(values, 1, columns).sort(dim=1, descending=True)
    return picked, torch.gather(columns, 1, order)


def _selects_with_numpy(values: Tensor) -> bool:
    """Whether the selections run in numpy (float CPU tensors) rather than ``torch.topk``."""
    return values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64)


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
class _Block:
    """Users scored together, with the flat positions ``row * num_items + item`` of the items never to
    recommend in their (B, num_items) score block."""

    start: int  # position of the block's first user in the plan's users
    users: Tensor  # (B,) user indices
    excluded: Tensor  # (X,) positions


@dataclass(frozen=True)
class _SplitTargets:
    """The users of one split, as positions in the plan's users, and the items they are to find."""

    rows: Tensor  # (R,) ascending
    num_relevant: Tensor  # (R,) targets per row
    target_rows: Tensor  # (T,) each target's row in ``rows``
    target_items: Tensor  # (T,) each target's item


@dataclass(frozen=True)
class _Plan:
    num_users: int
    blocks: list[_Block]
    splits: dict[str, _SplitTargets]


class FullRankingEvaluator:
    """Ranks all items for users who have targets, with known positives masked.

    Args:
        targets: (num_users, num_items) CSR of the items to find (valid or test).
        exclude: (num_users, num_items) CSR of items never to recommend (training, and optionally valid).
        ks: cut-offs.
        user_batch_size: users scored at once; on the CPU fewer when that many rows of scores would exceed
            :data:`CPU_BLOCK_BYTES`.
        candidates: (num_items,) bool, the only items ranked (for every user); None ranks every item. The
            cold-start tasks rank only cold or only warm items this way.
    """

    def __init__(
        self, targets: sp.csr_matrix, exclude: sp.csr_matrix, ks: tuple[int, ...], user_batch_size: int = 1024,
        candidates: np.ndarray | None = None,
    ) -> None:
        self.targets = _binary_csr(targets)
        self.exclude = _binary_csr(exclude)
        self.non_candidates = None if candidates is None else torch.from_numpy(np.flatnonzero(~candidates))
        self.ks = tuple(sorted(set(ks)))
        self.user_batch_size = user_batch_size
        self.users = np.flatnonzero(np.diff(self.targets.indptr) > 0)
        self._alone: JointEvaluator | None = None
        # plans of the groups this evaluator leads: (names and ids of the group, users per block) -> (group, plan)
        self._plans: dict[tuple[tuple[tuple[str, int], ...], int], tuple[tuple[FullRankingEvaluator, ...], _Plan]] = {}

    def evaluate(self, score: ScoreFn, device: torch.device | str = "cpu") -> MetricTable:
        """Score, mask, rank and measure every user with at least one target."""
        if self._alone is None:
            self._alone = JointEvaluator({"": self})
        return self._alone.evaluate(score, device)[""]


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

    def evaluate(self, score: ScoreFn, device: torch.device | str = "cpu") -> dict[str, MetricTable]:
        """``{split: MetricTable}``, as ``{split: evaluator.evaluate(score, device)}`` would give."""
        tables: dict[str, MetricTable] = {}
        for index, group in enumerate(self.groups):
            first = next(iter(group.values()))
            rows = _block_rows(first.user_batch_size, first.targets.shape[1], torch.device(device))
            tables.update(_rank_and_measure(group, _cached_plan(group, rows), score, device))
        return {name: tables[name] for name in self.evaluators}


def _same_ranking(a: FullRankingEvaluator, b: FullRankingEvaluator) -> bool:
    """Whether two evaluators rank every user alike: the same excluded items, cut-offs and batch size."""
    return (
        a.ks == b.ks
        and a.user_batch_size == b.user_batch_size
        and a.exclude.shape == b.exclude.shape
        and _same_items(a.non_candidates, b.non_candidates)
        and np.array_equal(a.exclude.indptr, b.exclude.indptr)
        and np.array_equal(a.exclude.indices, b.exclude.indices)
    )


def _same_items(a: Tensor | None, b: Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def _block_rows(user_batch_size: int, num_items: int, device: torch.device) -> int:
    """Users per score block: ``user_batch_size``, capped on the CPU so that a block is still in the cache
    when it is ranked."""
    if device.type != "cpu":
        return user_batch_size
    return max(1, min(user_batch_size, CPU_BLOCK_BYTES // (4 * num_items)))


def _cached_plan(group: Mapping[str, FullRankingEvaluator], block_rows: int) -> _Plan:
    """:func:`_plan`, built once per group of evaluators and block size. The group's first evaluator keeps it
    (with the group's evaluators, so that their ids stay theirs), so a new :class:`JointEvaluator` over the
    same evaluators, as the trainer makes at every validation, reuses it; evaluators never change."""
    first = next(iter(group.values()))
    key = (tuple((name, id(evaluator)) for name, evaluator in group.items()), block_rows)
    if key not in first._plans:
        first._plans[key] = (tuple(group.values()), _plan(group, block_rows))
    return first._plans[key][1]


def _plan(group: Mapping[str, FullRankingEvaluator], block_rows: int) -> _Plan:
    """The group's users in blocks, each with its excluded positions, and each split's rows and targets."""
    users = np.unique(np.concatenate([e.users for e in group.values()]))
    excluded = _block_positions(next(iter(group.values())).exclude, users, block_rows)
    starts = range(0, len(users), block_rows)
    blocks = [_Block(start, torch.from_numpy(users[start : start + block_rows]), excluded[number])
              for number, start in enumerate(starts)]
    return _Plan(len(users), blocks, {name: _split_targets(e.targets, users) for name, e in group.items()})


def _split_targets(targets: sp.csr_matrix, users: np.ndarray) -> _SplitTargets:
    counts = np.diff(targets.indptr)[users]
    rows = np.flatnonzero(counts > 0)
    target_rows = np.repeat(np.arange(len(rows)), counts[rows])
    target_items = targets[users[rows]].indices.astype(np.int64)
    return _SplitTargets(*(torch.from_numpy(a) for a in (rows, counts[rows], target_rows, target_items)))


@torch.no_grad()
def _rank_and_measure(
    group: Mapping[str, FullRankingEvaluator], plan: _Plan, score: ScoreFn, device: torch.device | str
) -> dict[str, MetricTable]:
    """Rank every user of the plan once; measure every split of the group on its own rows."""
    first = next(iter(group.values()))
    num_items, ks, max_k = first.targets.shape[1], first.ks, max(first.ks)
    top = _rank(plan, score, torch.device(device), num_items, max_k, first.non_candidates)
    tables = {}
    for name, evaluator in group.items():
        part = plan.splits[name]
        rows, target_rows = top[part.rows.to(top.device)], part.target_rows.to(top.device)
        hits = _hits(rows, target_rows, part.target_items.to(top.device), num_items)
        hits = torch.nn.functional.pad(hits, (0, max_k - hits.shape[1]))  # catalogues smaller than k
        metrics = ranking_metrics(hits, part.num_relevant.to(top.device), ks)
        tables[name] = MetricTable(evaluator.users, {metric: v.cpu().numpy() for metric, v in metrics.items()})
    return tables


def _rank(plan: _Plan, score: ScoreFn, device: torch.device, num_items: int, k: int,
          non_candidates: Tensor | None = None) -> Tensor:
    """(plan users, min(k, num_items)) item indices, best first, training items and non-candidates excluded."""
    skipped = None if non_candidates is None else non_candidates.to(device)
    top = torch.empty(plan.num_users, min(k, num_items), dtype=torch.long, device=device)
    dot = score if isinstance(score, DotProductScores) and score.is_float32() and plan.blocks else None
    if dot is not None:  # the first block is the largest
        buffer = torch.empty(len(plan.blocks[0].users), num_items, dtype=torch.float32, device=device)
    for block in plan.blocks:
        users = block.users.to(device)
        if dot is not None:
            scores = dot.into(users, buffer[: len(users)])
        else:
            scores = score(users).float().contiguous()
        scores.view(-1).index_fill_(0, block.excluded.to(device), -torch.inf)
        if skipped is not None:
            scores.index_fill_(1, skipped, -torch.inf)
        top[block.start : block.start + len(users)] = top_k_deterministic(scores, k)
    return top


def _hits(top: Tensor, target_rows: Tensor, target_items: Tensor, num_items: int) -> Tensor:
    """(R, k) bool: whether item ``top[r, j]`` is a target of row r.

    When the rows' (R, num_items) target mask is at most :data:`DENSE_HITS_RATIO` times the T x k
    comparisons below, the mask is filled and read at the ranked items: a memset, a scatter, a gather. Otherwise
    each target is compared with its row's k items (it appears there at most once), with k small cheaper
    than a binary search of the ranked items among all targets. Both give the same matrix.

    Shapes: top (R, k), target_rows (T,), target_items (T,) -> (R, k).
    """
    if top.shape[0] * num_items <= DENSE_HITS_RATIO * target_rows.numel() * top.shape[1]:
        is_target = torch.zeros(top.shape[0], num_items, dtype=torch.bool, device=top.device)
        is_target[target_rows, target_items] = True
        return is_target.gather(1, top)
    found_target, rank = torch.nonzero(top.index_select(0, target_rows) == target_items.unsqueeze(1), as_tuple=True)
    hits = torch.zeros(top.shape, dtype=torch.bool, device=top.device)
    hits[target_rows[found_target], rank] = True
    return hits


def _block_positions(matrix: sp.csr_matrix, users: np.ndarray, block_rows: int) -> list[Tensor]:
    """For each block of ``users``, the flat positions ``row_in_block * num_items + item`` of their stored
    entries, in ascending order."""
    sub = matrix[users]
    counts = np.diff(sub.indptr)
    rows = np.repeat(np.arange(len(users)) % block_rows, counts)
    positions = torch.from_numpy(rows * matrix.shape[1] + sub.indices.astype(np.int64))
    bounds = sub.indptr[np.arange(0, len(users), block_rows)[1:]]
    return list(torch.tensor_split(positions, torch.from_numpy(bounds.astype(np.int64))))


def _binary_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A canonical CSR copy (sorted, duplicates merged) without explicit zeros, so that only stored non-zeros
    count as present."""
    result = matrix.tocsr(copy=True)
    result.sum_duplicates()
    result.eliminate_zeros()
    return result


def make_evaluators(split: Split, eval_config: EvalConfig) -> dict[str, FullRankingEvaluator]:
    """Valid and test of ``eval.task`` (overall by default: every item ranked); valid ranks with training
    items masked, test also masks valid items when configured. See :mod:`modalrec.evaluate.tasks`."""
    from modalrec.evaluate.tasks import task_evaluators

    return task_evaluators(split, eval_config)
