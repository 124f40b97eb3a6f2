"""Top-K ranking metrics computed per user from a hit matrix.

``hits[u, r]`` is 1 when the item ranked at position ``r`` (0-based) for user ``u`` is relevant, and
``num_relevant[u]`` is the size of the user's relevant set. Every function returns a (num_users,) tensor;
averaging over users is left to the caller.
"""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.metric_names import METRICS, parse_metric_name

__all__ = ["METRICS", "FUNCTIONS", "parse_metric_name", "ranking_metrics"]


def recall(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    return hits[:, :k].sum(1) / num_relevant


def precision(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    return hits[:, :k].sum(1) / k


def hit(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    return (hits[:, :k].sum(1) > 0).to(hits.dtype)


def _discounts(k: int, like: Tensor) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=like.dtype, device=like.device))


def ndcg(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Binary gain; the ideal DCG places min(|relevant|, k) hits at the top."""
    discounts = _discounts(k, hits)
    dcg = (hits[:, :k] * discounts).sum(1)
    ideal_cumulative = torch.cumsum(discounts, 0)
    ideal = ideal_cumulative[(num_relevant.clamp(max=k) - 1).long()]
    return dcg / ideal


def average_precision(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """MAP@K: the sum of precision@r at each hit rank r <= k, divided by min(|relevant|, k)."""
    top = hits[:, :k]
    ranks = torch.arange(1, top.shape[1] + 1, dtype=hits.dtype, device=hits.device)
    precision_at_rank = torch.cumsum(top, 1) / ranks
    return (precision_at_rank * top).sum(1) / num_relevant.clamp(max=k)


def reciprocal_rank(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """MRR@K: 1 / rank of the first hit within the top k, or 0."""
    top = hits[:, :k]
    ranks = torch.arange(1, top.shape[1] + 1, dtype=hits.dtype, device=hits.device)
    first = torch.where(top > 0, ranks, torch.full_like(top, float("inf"))).min(1).values
    return torch.where(torch.isinf(first), torch.zeros_like(first), 1.0 / first)


FUNCTIONS = {
    "recall": recall,
    "precision": precision,
    "ndcg": ndcg,
    "hit": hit,
    "map": average_precision,
    "mrr": reciprocal_rank,
}


def ranking_metrics(hits: Tensor, num_relevant: Tensor, ks: tuple[int, ...]) -> dict[str, Tensor]:
    """Every metric at every cut-off: ``{"recall@20": (num_users,) tensor, ...}``.

    Recall, precision, hit and MRR are read off two per-user quantities taken once for all cut-offs: the
    running count of hits and the rank of the first hit. Both are whole numbers, exact in float64, so every
    value is bit for bit what the metric's function above gives; NDCG and MAP call their functions.
    """
    hits = hits.to(torch.float64)
    num_relevant = num_relevant.to(torch.float64)
    counted = _CountedHits(hits)
    values = {}
    for name in METRICS:
        for k in ks:
            shared = counted.metric(name, num_relevant, k)
            values[f"{name}@{k}"] = FUNCTIONS[name](hits, num_relevant, k) if shared is None else shared
    return values


class _CountedHits:
    """The running hit count and the first hit's rank of each row of a (users, width) hit matrix."""

    def __init__(self, hits: Tensor) -> None:
        self.width = hits.shape[1]
        self.running = torch.cumsum(hits, 1)  # hits within the top r + 1
        ranks = torch.arange(1, self.width + 1, dtype=hits.dtype, device=hits.device)
        self.first = torch.where(hits > 0, ranks, torch.full_like(hits, float("inf"))).min(1).values \
            if self.width else torch.full(hits.shape[:1], float("inf"), dtype=hits.dtype, device=hits.device)

    def count(self, k: int) -> Tensor:
        """Hits within the top k. Shape: (users,)."""
        if self.width == 0:
            return torch.zeros_like(self.first)
        return self.running[:, min(k, self.width) - 1]

    def metric(self, name: str, num_relevant: Tensor, k: int) -> Tensor | None:
        """``FUNCTIONS[name](hits, num_relevant, k)`` for the metrics these quantities give, else None."""
        if name == "recall":
            return self.count(k) / num_relevant
        if name == "precision":
            return self.count(k) / k
        if name == "hit":
            return (self.count(k) > 0).to(self.first.dtype)
        if name == "mrr":
            return torch.where(self.first <= k, 1.0 / self.first, torch.zeros_like(self.first))
        return None
