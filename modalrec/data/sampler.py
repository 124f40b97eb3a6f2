"""Vectorised uniform negative sampling that never returns a user's training positive."""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.errors import DataFormatError

MAX_ROUNDS = 1000


class NegativeSampler:
    """Draws items uniformly, redrawing (in bulk) those that are the user's training positives.

    Membership is tested with a binary search over the sorted keys ``user * num_items + item``.

    Args:
        num_items: catalogue size.
        users: (n,) training user indices.
        items: (n,) training item indices.
    """

    def __init__(self, num_items: int, users: Tensor, items: Tensor) -> None:
        self.num_items = num_items
        self.positive_keys = torch.unique(users.long() * num_items + items.long())  # sorted
        degree = torch.bincount(self.positive_keys // num_items)
        if len(degree) and int(degree.max()) >= num_items:
            raise DataFormatError(None, "a user has interacted with every item; no negative item can be sampled")

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        keys = users.long() * self.num_items + items.long()
        position = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[position] == keys

    def sample(self, users: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One negative item per user in ``users`` (shape (B,) -> (B,))."""
        negatives = torch.randint(self.num_items, users.shape, generator=generator)
        redraw = self.is_positive(users, negatives)
        for _ in range(MAX_ROUNDS):
            if not redraw.any():
                return negatives
            count = int(redraw.sum())
            negatives[redraw] = torch.randint(self.num_items, (count,), generator=generator)
            redraw[redraw.clone()] = self.is_positive(users[redraw], negatives[redraw])
        raise RuntimeError("negative sampling did not converge")  # unreachable for users with any negative
