"""Vectorised uniform negative sampling that never returns a user's training positive."""

from __future__ import annotations

import torch
from torch import Tensor

from modalrec.errors import DataFormatError

MAX_ROUNDS = 1000


class NegativeSampler:
    """Draws items uniformly from ``candidates``, redrawing (in bulk) those that are training positives.

    Membership is tested with a binary search over the sorted keys ``user * num_items + item``.

    Args:
        num_items: catalogue size.
        users: (n,) training user indices.
        items: (n,) training item indices.
        candidates: items negatives are drawn from; None means the whole catalogue.
    """

    def __init__(self, num_items: int, users: Tensor, items: Tensor, candidates: Tensor | None = None) -> None:
        self.num_items = num_items
        self.candidates = torch.arange(num_items) if candidates is None else candidates.long()
        self.positive_keys = torch.unique(users.long() * num_items + items.long())  # sorted
        degree = torch.bincount(self.positive_keys // num_items)
        if len(degree) and int(degree.max()) >= len(self.candidates):
            user = int(degree.argmax())
            raise DataFormatError(None, f"user index {user} has interacted with every item; no negative to sample")

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        return sorted_contains(self.positive_keys, users.long() * self.num_items + items.long())

    def _draw(self, count: int | tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        shape = (count,) if isinstance(count, int) else count
        return self.candidates[torch.randint(len(self.candidates), shape, generator=generator)]

    def sample(self, users: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One negative item per user in ``users`` (shape (B,) -> (B,))."""
        negatives = self._draw(tuple(users.shape), generator)
        redraw = self.is_positive(users, negatives)
        for _ in range(MAX_ROUNDS):
            if not redraw.any():
                return negatives
            negatives[redraw] = self._draw(int(redraw.sum()), generator)
            redraw[redraw.clone()] = self.is_positive(users[redraw], negatives[redraw])
        raise RuntimeError("negative sampling did not converge")  # unreachable for users with any negative


def sorted_contains(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    """Whether each of ``keys`` is in ``sorted_keys`` (ascending, non-empty): one binary search per key.
    Shapes: (P,), any -> keys' shape, bool."""
    position = torch.searchsorted(sorted_keys, keys).clamp_(max=len(sorted_keys) - 1)
    return sorted_keys[position] == keys
