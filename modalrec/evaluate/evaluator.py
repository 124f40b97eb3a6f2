"""Full-ranking evaluation: every item is scored for every user, training items are masked.

Users are scored in batches of ``user_batch_size``, so memory is bounded by that many rows of scores.
Ties are broken deterministically: among equal scores the lower item index ranks first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from modalrec.evaluate.metrics import ranking_metrics

ScoreFn = Callable[[Tensor], Tensor]  # (B,) user indices -> (B, num_items) scores


@dataclass(frozen=True)
class MetricTable:
    """Per-user metric values (for significance tests) and their means."""

    users: np.ndarray  # (n,) evaluated user indices
    per_user: dict[str, np.ndarray]  # metric name -> (n,) values

    def mean(self) -> dict[str, float]:
        return {name: float(values.mean()) if len(values) else 0.0 for name, values in self.per_user.items()}


def top_k_deterministic(scores: Tensor, k: int) -> Tensor:
    """Indices of the k best items per row, by score descending then item index ascending.

    Shapes: scores (B, N) -> (B, min(k, N)).
    """
    k = min(k, scores.shape[1])
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

    @torch.no_grad()
    def evaluate(self, score: ScoreFn, device: torch.device | str = "cpu") -> MetricTable:
        """Score, mask, rank and measure every user with at least one target."""
        collected: dict[str, list[np.ndarray]] = {}
        max_k = max(self.ks)
        for start in range(0, len(self.users), self.user_batch_size):
            batch = self.users[start : start + self.user_batch_size]
            user_tensor = torch.from_numpy(batch).to(device)
            scores = score(user_tensor).float()
            self._mask(scores, batch)
            top = top_k_deterministic(scores, max_k)
            hits, num_relevant = self._hits(top, batch)
            hits = torch.nn.functional.pad(hits, (0, max_k - hits.shape[1]))  # catalogues smaller than k
            for name, values in ranking_metrics(hits, num_relevant, self.ks).items():
                collected.setdefault(name, []).append(values.cpu().numpy())
        per_user = {name: np.concatenate(parts) for name, parts in collected.items()}
        if not per_user:
            per_user = {name: np.zeros(0) for name in ranking_metrics(torch.zeros(0, max_k), torch.ones(0), self.ks)}
        return MetricTable(self.users, per_user)

    def _mask(self, scores: Tensor, batch: np.ndarray) -> None:
        rows, cols = self._batch_coordinates(self.exclude, batch, scores.device)
        scores[rows, cols] = -torch.inf

    def _hits(self, top: Tensor, batch: np.ndarray) -> tuple[Tensor, Tensor]:
        rows, cols = self._batch_coordinates(self.targets, batch, top.device)
        relevant = torch.zeros(len(batch), self.targets.shape[1], dtype=torch.bool, device=top.device)
        relevant[rows, cols] = True
        num_relevant = torch.from_numpy(np.diff(self.targets.indptr)[batch]).to(top.device)
        return torch.gather(relevant, 1, top), num_relevant

    @staticmethod
    def _batch_coordinates(matrix: sp.csr_matrix, batch: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
        sub = matrix[batch]
        rows = np.repeat(np.arange(len(batch)), np.diff(sub.indptr))
        return torch.from_numpy(rows).to(device), torch.from_numpy(sub.indices.astype(np.int64)).to(device)


def _binary_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A CSR copy without explicit zeros, so that only stored non-zeros count as present."""
    result = matrix.tocsr(copy=True)
    result.eliminate_zeros()
    return result
