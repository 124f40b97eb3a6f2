"""Reductions over a list of same-shaped tensors, without stacking them first."""

from __future__ import annotations

from torch import Tensor


def sum_in_order(tensors: list[Tensor]) -> Tensor:
    """The element-wise sum of the tensors, added first to last, without the stacked copy and the strided
    reduction of ``torch.stack(tensors).sum(0)``. For two or three tensors, as the models here add, the two
    give the same values bit for bit; for more, the stacked sum may add in another order (equal up to rounding).

    Shapes: M x (N, d) -> (N, d).
    """
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total
