"""bfloat16 products with fixed content tables in the training step: when they are used, what they compute,
and that the float32 parameters still learn through them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modalrec.errors import ConfigError
from modalrec.models import ModelInputs
from modalrec.models.base import TrainBatch
from modalrec.models.vbpr import VBPR, VBPRConfig
from modalrec.nn import precision
from modalrec.nn.precision import ContentLinear, TrainingTables, check_precision, project


@pytest.mark.parametrize(("setting", "native", "expected"), [
    ("float32", True, torch.float32), ("bfloat16", False, torch.bfloat16),
    ("auto", True, torch.bfloat16), ("auto", False, torch.float32),
])
def test_auto_uses_bfloat16_only_where_the_device_runs_it_natively(
        monkeypatch: pytest.MonkeyPatch, setting: str, native: bool, expected: torch.dtype) -> None:
    monkeypatch.setattr(precision, "native_bfloat16", lambda device_type: native)
    assert TrainingTables(setting)(torch.ones(3, 2)).dtype == expected


def test_the_copy_is_made_once_and_again_when_the_table_changes() -> None:
    tables, table = TrainingTables("bfloat16"), torch.arange(6.0).reshape(3, 2)
    first = tables(table)
    assert tables(table) is first
    assert torch.equal(first.float(), table)
    table.mul_(2)  # in place: the cached copy is stale
    assert torch.equal(tables(table).float(), table)
    other = table.clone()
    assert tables(other) is not tables(table)


def test_float32_tables_pass_through_unchanged() -> None:
    table = torch.randn(4, 3)
    assert TrainingTables("float32")(table) is table


def test_project_in_bfloat16_approximates_the_float32_layer_and_trains_its_float32_weights() -> None:
    torch.manual_seed(0)
    layer, table = nn.Linear(64, 8), torch.randn(50, 64)
    exact = layer(table)
    low = project(table.bfloat16(), layer)
    assert low.dtype == torch.float32
    assert torch.allclose(low, exact, rtol=0.05, atol=0.05)
    assert not torch.equal(low, exact)  # it did run in bfloat16
    low.square().sum().backward()
    low_gradient = layer.weight.grad.clone()
    layer.zero_grad()
    exact.square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32
    assert torch.allclose(low_gradient, layer.weight.grad, rtol=0.05, atol=0.05 * layer.weight.grad.abs().max())


def test_content_linear_is_a_linear_layer_that_also_takes_bfloat16() -> None:
    torch.manual_seed(0)
    layer, table = ContentLinear(16, 4), torch.randn(10, 16)
    plain = nn.Linear(16, 4)
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(layer(table), plain(table))
    low = layer(table.bfloat16())
    assert low.dtype == torch.float32 and torch.allclose(low, plain(table), rtol=0.05, atol=0.05)


def test_unknown_precision_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="model.train_precision.*auto, float32, bfloat16"):
        VBPRConfig(train_precision="half")
    check_precision("auto")


def vbpr(train_precision: str) -> VBPR:
    torch.manual_seed(0)
    users, items = torch.arange(6).repeat(4), torch.arange(24) % 18
    features = {"image": torch.randn(20, 32), "text": torch.randn(20, 16)}
    return VBPR(VBPRConfig(embedding_dim=4, content_dim=3, train_precision=train_precision),
                ModelInputs(6, 20, users, items, features))


def test_vbpr_trains_in_bfloat16_but_scores_in_float32() -> None:
    exact, low = vbpr("float32"), vbpr("bfloat16")
    batch = TrainBatch(torch.tensor([0, 3, 3, 5]), torch.tensor([1, 2, 1, 19]), torch.tensor([2, 0, 18, 2]))
    exact_loss, low_loss = exact.loss(batch), low.loss(batch)
    assert torch.allclose(low_loss, exact_loss, rtol=0.02)
    assert not torch.equal(low_loss, exact_loss)  # the content products did run in bfloat16
    low_loss.backward()
    assert low.content_projection.weight.grad.dtype == torch.float32
    assert low.content_projection.weight.grad.abs().sum() > 0
    assert torch.equal(low.compute_embeddings().items, exact.compute_embeddings().items)  # same weights, float32
