"""Degree-sensitive edge pruning of the user-item graph (FREEDOM's denoising step).

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023. https://arxiv.org/abs/2211.06924
"""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.errors import ConfigError


def degree_sensitive_weights(users: Tensor, items: Tensor) -> Tensor:
    r"""Each edge's sampling weight :math:`p_{ui} = 1 / \sqrt{d_u\, d_i}`, with degrees counted over the edges given.

    Edges between high-degree nodes get small weights: they are the ones pruning drops most often.

    Shapes: users, items (E,) -> (E,).
    """
    user_degree = torch.bincount(users).float()
    item_degree = torch.bincount(items).float()
    return (user_degree[users] * item_degree[items]).rsqrt()


def prune_edges(users: Tensor, items: Tensor, weights: Tensor, drop_ratio: float) -> tuple[Tensor, Tensor]:
    r"""Keep :math:`\lfloor (1-\rho)|E| \rfloor` edges, drawn without replacement, each draw proportional to weight.

    This is FREEDOM's sampler: every draw picks a remaining edge with probability proportional to its weight
    (``torch.multinomial`` without replacement, driven by torch's global RNG, so ``torch.manual_seed``
    reproduces it). With ``drop_ratio == 0`` every edge is kept.

    Args:
        users, items: the edges, one (user, item) pair per position.
        weights: non-negative sampling weights, e.g. :func:`degree_sensitive_weights`.
        drop_ratio: :math:`\rho`, the fraction of edges to drop, in [0, 1).

    Shapes: users, items, weights (E,) -> kept users, kept items (K,) with K = floor((1 - rho) E).
    """
    if not 0.0 <= drop_ratio < 1.0:
        raise ConfigError("model.dropout", f"the edge drop ratio must be in [0, 1), got {drop_ratio}")
    if drop_ratio == 0.0:
        return users, items
    keep = max(int(len(weights) * (1.0 - drop_ratio)), 1)
    kept = torch.multinomial(weights, keep, replacement=False)
    return users[kept], items[kept]
