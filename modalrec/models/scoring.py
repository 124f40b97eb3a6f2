"""Score functions handed to the evaluator: any ``users -> scores`` callable, or dot products of embeddings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

ScoreFn = Callable[[Tensor], Tensor]  # (B,) user indices -> (B, num_items) scores


@dataclass(frozen=True)
class DotProductScores:
    """Scores that are dot products, ``user_vectors[users] @ item_vectors.T``. A score function like any
    other, which the evaluator can also compute into one buffer that it reuses for every block of users
    instead of allocating a fresh score block per batch.

    Shapes: user_vectors (num_users, d), item_vectors (num_items, d).
    """

    user_vectors: Tensor
    item_vectors: Tensor

    def __call__(self, users: Tensor) -> Tensor:
        return self.user_vectors[users] @ self.item_vectors.T

    def is_float32(self) -> bool:
        return self.user_vectors.dtype == self.item_vectors.dtype == torch.float32

    def into(self, users: Tensor, out: Tensor) -> Tensor:
        """The scores written into ``out``, a float32 (len(users), num_items) tensor."""
        return torch.mm(self.user_vectors.index_select(0, users), self.item_vectors.T, out=out)
