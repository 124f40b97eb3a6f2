"""VBPR's training step: projecting only the batch's distinct items gives the loss and gradients of the
whole table's item vectors."""

from __future__ import annotations

import pytest
import torch

from modalrec.models import ModelInputs
from modalrec.models.base import TrainBatch
from modalrec.models.vbpr import VBPR, VBPRConfig
from modalrec.nn import bpr_loss, l2_penalty


def model(num_items: int, precision: str = "float32") -> VBPR:
    torch.manual_seed(0)
    users, items = torch.arange(6).repeat(4), torch.arange(24) % (num_items - 2)  # the last two items are cold
    features = {"image": torch.randn(num_items, 10), "text": torch.randn(num_items, 4)}
    vbpr = VBPR(VBPRConfig(embedding_dim=4, content_dim=3, train_precision=precision), ModelInputs(6, num_items, users, items, features))
    for parameter in (vbpr.item_bias.weight, vbpr.content_bias.weight):  # zero at start: make them count
        torch.nn.init.normal_(parameter)
    return vbpr


def loss_over_the_whole_table(vbpr: VBPR, batch: TrainBatch) -> torch.Tensor:
    """The loss as the docstring's equation states it, from ``item_vectors()`` of every item."""
    items = vbpr.item_vectors()
    user = vbpr.user_vectors()[batch.users]
    positive, negative = items[batch.positive_items], items[batch.negative_items]
    ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
    return ranking + vbpr.config.reg_weight * l2_penalty(user[:, :-1], positive, negative)


def gradients(vbpr: VBPR, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    vbpr.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in vbpr.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("num_items", [40, 5])  # 8 draws: fewer than the catalogue (distinct rows), then more
def test_the_batch_loss_and_gradients_are_those_of_the_whole_table(num_items: int) -> None:
    vbpr = model(num_items)
    batch = TrainBatch(torch.tensor([0, 3, 3, 5]), torch.tensor([1, 2, 1, num_items - 1]),
                       torch.tensor([2, 0, num_items - 2, 2]))  # repeats, and both cold items
    expected = loss_over_the_whole_table(vbpr, batch)
    expected_gradients = gradients(vbpr, expected)
    loss = vbpr.loss(batch)
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)
    found = gradients(vbpr, loss)
    assert found.keys() == expected_gradients.keys()
    for name, gradient in expected_gradients.items():
        assert torch.allclose(found[name], gradient, rtol=1e-5, atol=1e-7), name
    assert found["item_id.weight"][num_items - 2 :].abs().sum() == 0  # cold items' ID factors stay untrained
