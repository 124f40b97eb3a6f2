"""Closed-form item-item models: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019),
optionally pulled towards a content item-item graph."""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.errors import ConfigError
from modalrec.nn.graph import unique_pairs


def ease_weights(
    users: Tensor,
    items: Tensor,
    num_items: int,
    l2: float,
    *,
    prior: Tensor | None = None,
    prior_weight: float = 0.0,
) -> Tensor:
    r"""The item-item matrix :math:`B` minimising :math:`\lVert X - XB\rVert^2 + \lambda\lVert B\rVert^2
    - 2\mu\,\mathrm{tr}(B^\top S)` subject to :math:`\mathrm{diag}(B) = 0`.

    With :math:`P = (X^\top X + \lambda I)^{-1}` and :math:`C = P\,(X^\top X + \mu S)` the solution is
    :math:`B = C - P\,\mathrm{diag}(\mathrm{diag}(C) / \mathrm{diag}(P))`. With :math:`\mu = 0` this is
    EASE. The prior :math:`S` (a content kNN graph) gives items without interactions non-zero columns: a
    cold item is predicted from the user's history items that resemble it.

    Computed in float64 for a stable inverse, returned in float32.

    Shapes: users, items (E,) training pairs; prior (I, I) sparse or dense -> (I, I) dense.
    """
    if l2 <= 0:
        raise ConfigError("model.ease_l2", f"must be > 0, got {l2}")
    user_index, item_index = unique_pairs(users, items, num_items)
    _, user_rows = torch.unique(user_index, return_inverse=True)
    history = torch.zeros(int(user_rows.max()) + 1 if len(user_index) else 0, num_items, dtype=torch.float64)
    history[user_rows, item_index] = 1.0
    gram = history.T @ history
    precision = torch.linalg.inv(gram + l2 * torch.eye(num_items, dtype=torch.float64))
    target = gram if prior is None or prior_weight == 0 else gram + prior_weight * prior.to_dense().double()
    solution = precision @ target
    weights = solution - precision * (torch.diagonal(solution) / torch.diagonal(precision))[None, :]
    weights.fill_diagonal_(0.0)
    return weights.float()
