"""sum_in_order: the models' replacement for a stacked sum must not change a single value."""

from __future__ import annotations

import pytest
import torch

from modalrec.nn.reduce import sum_in_order


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2625, 64), (50, 7)])
def test_sum_in_order_equals_the_stacked_sum_and_mean_bit_for_bit(count: int, shape: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(count)
    tensors = [torch.randn(*shape, generator=generator) * 10.0 ** (2 - i) for i in range(count)]
    assert torch.equal(sum_in_order(tensors), torch.stack(tensors).sum(0))
    assert torch.equal(sum_in_order(tensors) / count, torch.stack(tensors).mean(0))


def test_sum_in_order_carries_the_gradient_to_every_tensor() -> None:
    tensors = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    (sum_in_order(tensors) * torch.arange(12.0).view(4, 3)).sum().backward()
    for tensor in tensors:
        assert tensor.grad is not None and torch.equal(tensor.grad, torch.arange(12.0).view(4, 3))
