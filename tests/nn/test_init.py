"""ID embeddings started from the truncated SVD of the training matrix (``model.id_init=svd``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modalrec.nn.init as init
from modalrec.errors import ConfigError
from modalrec.models import ModelInputs
from modalrec.models.freedom import FREEDOM, FREEDOMConfig
from modalrec.models.vbpr import VBPR, VBPRConfig
from modalrec.nn.init import start_from_svd, svd_factors


def pairs(num_users: int, num_items: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random binary training matrix with one repeated pair, an item and a user without interactions."""
    generator = np.random.default_rng(seed)
    cells = np.argwhere(generator.random((num_users - 1, num_items - 1)) < 0.3)
    users, items = torch.from_numpy(cells[:, 0]), torch.from_numpy(cells[:, 1])
    return torch.cat([users, users[:1]]), torch.cat([items, items[:1]])


def binary(users: torch.Tensor, items: torch.Tensor, num_users: int, num_items: int) -> np.ndarray:
    matrix = np.zeros((num_users, num_items))
    matrix[users.numpy(), items.numpy()] = 1.0
    return matrix


def test_at_full_rank_the_factors_reconstruct_the_matrix_up_to_one_scale_with_the_asked_mean_norm() -> None:
    users, items = pairs(7, 9)
    user_factors, item_factors = svd_factors(7, 9, users, items, dim=6, mean_norm=0.8)  # rank <= 6 = min - 1
    product = (user_factors.double() @ item_factors.double().T).numpy()
    matrix = binary(users, items, 7, 9)
    scale = product.sum() / matrix.sum()
    assert np.allclose(product, scale * matrix, atol=1e-5)  # the repeated pair counts once
    norms = torch.cat([user_factors, item_factors]).norm(dim=1)
    assert norms.mean().item() == pytest.approx(0.8, rel=1e-5)
    assert user_factors[6].abs().max() == 0 and item_factors[8].abs().max() == 0  # no interactions: zero rows


def test_truncated_factors_rank_like_the_best_low_rank_approximation_on_both_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    users, items = pairs(30, 40, seed=1)
    matrix = binary(users, items, 30, 40)
    left, values, right_t = np.linalg.svd(matrix)
    best = left[:, :5] * values[:5] @ right_t[:5]  # Eckart-Young: the best rank-5 approximation
    for cells in (init.DENSE_SVD_CELLS, 0):  # dense SVD, then ARPACK
        monkeypatch.setattr(init, "DENSE_SVD_CELLS", cells)
        user_factors, item_factors = svd_factors(30, 40, users, items, dim=5, mean_norm=1.0)
        product = (user_factors.double() @ item_factors.double().T).numpy()
        assert np.allclose(product / product.sum(), best / best.sum(), atol=1e-6)


def test_columns_beyond_the_rank_keep_the_tables_own_values() -> None:
    users, items = pairs(4, 5, seed=2)
    user_table, item_table = torch.nn.Embedding(4, 6), torch.nn.Embedding(5, 6)
    before = user_table.weight.detach().clone()
    start_from_svd(user_table, item_table, users, items, mean_norm=1.0)
    assert torch.equal(user_table.weight[:, 3:], before[:, 3:])  # rank at most min(4, 5) - 1 = 3
    assert not torch.equal(user_table.weight[:, :3], before[:, :3])
    assert torch.isfinite(item_table.weight).all()


def content_inputs(seed: int = 0) -> ModelInputs:
    users, items = pairs(12, 20, seed)
    generator = torch.Generator().manual_seed(seed)
    features = {"image": torch.randn(20, 8, generator=generator), "text": torch.randn(20, 5, generator=generator)}
    return ModelInputs(12, 20, users, items, features)


@pytest.mark.parametrize(("model_class", "config_class", "tables"),
                         [(VBPR, VBPRConfig, ("user_id", "item_id")),
                          (FREEDOM, FREEDOMConfig, ("user_embedding", "item_embedding"))])
def test_models_start_their_id_embeddings_from_the_svd_when_asked_and_nothing_else_changes(
        model_class: type, config_class: type, tables: tuple[str, str]) -> None:
    inputs = content_inputs()
    torch.manual_seed(0)
    model = model_class(config_class(embedding_dim=4, id_init="svd", svd_norm=0.5), inputs)
    user_factors, item_factors = svd_factors(12, 20, inputs.train_users, inputs.train_items, 4, 0.5)
    assert torch.equal(getattr(model, tables[0]).weight, user_factors)
    assert torch.equal(getattr(model, tables[1]).weight, item_factors)
    torch.manual_seed(0)
    random_start = model_class(config_class(embedding_dim=4, id_init="xavier"), inputs)
    assert not torch.equal(getattr(random_start, tables[0]).weight, user_factors)
    others = [name for name, _ in model.named_parameters() if not name.startswith(tables)]
    assert others and all(torch.equal(model.get_parameter(n), random_start.get_parameter(n)) for n in others)


@pytest.mark.parametrize("config_class", [VBPRConfig, FREEDOMConfig])
def test_an_unknown_start_or_a_non_positive_norm_is_refused_by_name(config_class: type) -> None:
    with pytest.raises(ConfigError, match="model.id_init.*xavier, svd.*'pca'"):
        config_class(id_init="pca")
    with pytest.raises(ConfigError, match="model.svd_norm"):
        config_class(id_init="svd", svd_norm=0.0)
