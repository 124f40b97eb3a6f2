"""Closed-form item-item models: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.errors import ConfigError


def ease_weights(users: Tensor, items: Tensor, num_items: int, l2: float) -> Tensor:
    r"""The EASE item-item matrix :math:`B = I - P\,\mathrm{diag}(1/\mathrm{diag}(P))`, :math:`P = (X^\top X + \lambda I)^{-1}`.

    The diagonal is zero (an item never recommends itself), and items without interactions get zero
    columns. Computed in float64 for a stable inverse, returned in float32.

    Shapes: users, items (E,) training pairs -> (I, I) dense.
    """
    if l2 <= 0:
        raise ConfigError("model.ease_l2", f"must be > 0, got {l2}")
    keys = torch.unique(users.long() * num_items + items.long())
    user_index, item_index = keys // num_items, keys % num_items
    _, user_rows = torch.unique(user_index, return_inverse=True)
    history = torch.zeros(int(user_rows.max()) + 1 if len(keys) else 0, num_items, dtype=torch.float64)
    history[user_rows, item_index] = 1.0
    gram = history.T @ history + l2 * torch.eye(num_items, dtype=torch.float64)
    precision = torch.linalg.inv(gram)
    weights = -precision / torch.diagonal(precision)[None, :]
    weights.fill_diagonal_(0.0)
    return weights.float()
