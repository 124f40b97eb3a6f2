"""BM3, LGMRec and SMORE: what each paper's parts do, cold items, and the shared pieces they are built from."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from modalrec.errors import ConfigError
from modalrec.models import ModelInputs, Recommender, TrainBatch
from modalrec.models.bm3 import BM3, BM3Config
from modalrec.models.lgmrec import LGMRec, LGMRecConfig
from modalrec.models.smore import SMORE, SMOREConfig, batch_rows_info_nce
from modalrec.nn.contrastive import bootstrap_loss, info_nce
from modalrec.nn.hypergraph import hypergraph_propagate
from modalrec.nn.sparse import SparseOperator, elementwise_max, user_item_matrix
from modalrec.nn.spectral import SpectralFilter, SpectrumFusion, from_spectrum, to_spectrum

NUM_USERS, NUM_ITEMS = 6, 8
# two taste groups: users 0-2 like items 0-2, users 3-5 like items 3-5; items 6 and 7 are cold
USERS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
ITEMS = torch.tensor([0, 1, 1, 2, 0, 2, 3, 4, 4, 5, 3, 5])
COLD = [6, 7]
MODELS: dict[str, tuple[type[Recommender], Any]] = {
    "bm3": (BM3, BM3Config(embedding_dim=8)),
    "lgmrec": (LGMRec, LGMRecConfig(embedding_dim=8)),
    "smore": (SMORE, SMOREConfig(embedding_dim=8, knn_k=3)),
}


def tiny_features(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    group = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1])  # cold item 6 looks like group 0, item 7 like group 1
    image = torch.cat([F.one_hot(group, 2).float(), 0.3 * torch.randn(NUM_ITEMS, 4, generator=generator)], dim=1)
    return {"image": image, "text": torch.randn(NUM_ITEMS, 6, generator=generator)}


def tiny_inputs(features: dict[str, torch.Tensor] | None = None) -> ModelInputs:
    return ModelInputs(NUM_USERS, NUM_ITEMS, USERS, ITEMS, tiny_features() if features is None else features)


def build(name: str, features: dict[str, torch.Tensor] | None = None, **changes: Any) -> Recommender:
    model_class, config = MODELS[name]
    torch.manual_seed(0)
    return model_class(dataclasses.replace(config, **changes), tiny_inputs(features))


def batch(negatives: list[int] | None = None) -> TrainBatch:
    return TrainBatch(USERS, ITEMS, torch.tensor(negatives or [5, 4, 3, 5, 4, 3, 0, 1, 2, 0, 1, 2]))


def train(model: Recommender, steps: int = 30) -> Recommender:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(batch()).backward()
        optimizer.step()
    return model.eval()


# -- BM3 ----------------------------------------------------------------------------------------------


def test_bm3_loss_ignores_negative_items() -> None:
    model = build("bm3")
    torch.manual_seed(1)
    first = model.loss(batch([5, 4, 3, 5, 4, 3, 0, 1, 2, 0, 1, 2]))
    torch.manual_seed(1)
    second = model.loss(batch([1, 1, 1, 1, 1, 1, 7, 6, 7, 6, 7, 6]))
    assert torch.equal(first, second)


def test_bm3_target_view_carries_no_gradient() -> None:
    model = build("bm3")
    users, items = model.online_embeddings()
    assert users.requires_grad
    target = model.target_view(items)
    assert not target.requires_grad and target.grad_fn is None
    online = torch.randn(4, 8, requires_grad=True)
    other = torch.randn(4, 8, requires_grad=True)
    bootstrap_loss(online, other).backward()
    assert online.grad is not None and other.grad is None


def test_bm3_loss_is_non_negative_and_falls() -> None:
    model = build("bm3")
    before = model.loss(batch()).item()
    train(model)
    model.train()
    after = model.loss(batch()).item()
    assert 0.0 <= after < before


def test_bm3_projects_only_the_cold_items_content_with_the_same_result() -> None:
    model = train(build("bm3"))
    with torch.no_grad():
        users, items = model.online_embeddings()
        warm = model.warm.bool()
        whole_catalogue = torch.where(warm, items, model.latent_from_content(model.content, items[warm.squeeze(1)]))
        vectors = model.compute_embeddings()
        assert torch.equal(vectors.users, model.predictor(users))
        assert torch.allclose(vectors.items, model.predictor(whole_catalogue), rtol=0, atol=1e-6)
        assert not torch.allclose(vectors.items[COLD], model.predictor(items)[COLD])  # cold rows came from content


# -- LGMRec -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_lgmrec_hyperedge_assignments_are_row_stochastic(training: bool) -> None:
    model = build("lgmrec", num_hyperedges=3)
    model.train(training)
    assignments = model.hyperedge_assignments(model.hyperedge_logits(model.content))
    assert len(assignments) == 2  # image, text
    for users, items in assignments:
        assert users.shape == (NUM_USERS, 3) and items.shape == (NUM_ITEMS, 3)
        for assignment in (users, items):
            assert bool((assignment >= 0).all())
            assert torch.allclose(assignment.sum(1), torch.ones(len(assignment)), atol=1e-5)


def test_lgmrec_one_product_per_modality_gives_both_projections() -> None:
    model = train(build("lgmrec", num_hyperedges=3))
    parts = torch.split(model.content, model.modality_dims, dim=1)
    expected_logits = model.hyperedge_logits(model.content)
    products = model.modality_products()
    assert len(products) == 2
    for (items, logits), projection, part, expected in zip(products, model.projections, parts, expected_logits):
        assert items.shape == (NUM_ITEMS, 8) and logits.shape == (NUM_ITEMS, 3)
        assert torch.allclose(items, projection(part), rtol=0, atol=1e-6)
        assert torch.allclose(logits, expected, rtol=0, atol=1e-6)


def test_lgmrec_global_part_changes_the_output_only_when_alpha_is_positive() -> None:
    local_only, with_global = build("lgmrec", alpha=0.0), build("lgmrec", alpha=0.5)
    with_global.load_state_dict(local_only.state_dict())
    local_items = local_only.eval().embeddings().items
    assert not torch.allclose(local_items, with_global.eval().embeddings().items)
    model = build("lgmrec", alpha=0.0).eval()
    for hyperedges in model.hyperedges:  # alpha = 0: the hypergraph cannot matter
        torch.nn.init.normal_(hyperedges.weight)
    assert torch.allclose(local_items, model.embeddings().items)


def test_lgmrec_contrastive_loss_is_the_sum_over_the_batch() -> None:
    model = build("lgmrec")
    views = [torch.randn(NUM_USERS + NUM_ITEMS, 8) for _ in range(2)]
    first_users, first_items = torch.split(views[0], [NUM_USERS, NUM_ITEMS])
    second_users, second_items = torch.split(views[1], [NUM_USERS, NUM_ITEMS])
    tau = model.config.tau
    expected = info_nce(first_users[USERS], second_users, USERS, tau).sum()  # repeated users count each time
    expected = expected + info_nce(first_items[ITEMS], second_items, ITEMS, tau).sum()
    assert torch.allclose(model.hypergraph_contrastive_loss(views, batch()), expected, atol=1e-4)


def test_hypergraph_layer_matches_its_formula() -> None:
    item_assign = torch.softmax(torch.randn(5, 3), 1)
    user_assign = torch.softmax(torch.randn(4, 3), 1)
    items = torch.randn(5, 2)
    hyperedges, items_out = hypergraph_propagate(item_assign, items, num_layers=2)
    once = item_assign @ item_assign.T @ items
    assert torch.allclose(items_out, item_assign @ item_assign.T @ once, atol=1e-6)
    assert torch.allclose(user_assign @ hyperedges, user_assign @ item_assign.T @ once, atol=1e-6)


# -- SMORE --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [8, 7])
def test_all_ones_spectral_filter_is_the_identity(dim: int) -> None:
    signal = torch.randn(5, dim)
    identity = SpectralFilter(dim)
    with torch.no_grad():
        identity.weight.copy_(torch.tensor([1.0, 0.0]).expand_as(identity.weight))
    assert torch.allclose(from_spectrum(identity(to_spectrum(signal)), dim), signal, atol=1e-5)
    assert not torch.allclose(from_spectrum(SpectralFilter(dim)(to_spectrum(signal)), dim), signal, atol=1e-2)


def test_spectrum_fusion_is_a_filtered_product_of_spectra() -> None:
    signals = [torch.randn(4, 8), torch.randn(4, 8)]
    fusion = SpectrumFusion(2, 8)
    denoised, fused = fusion(signals)
    spectra = [torch.fft.rfft(s, dim=1, norm="ortho") for s in signals]
    expected = torch.fft.irfft(
        spectra[0] * spectra[1] * torch.view_as_complex(fusion.fusion_filter.weight), n=8, dim=1, norm="ortho"
    )
    assert torch.allclose(fused, expected, atol=1e-5)
    assert all(d.shape == (4, 8) for d in denoised)


def test_smore_learns_its_spectral_filters_and_they_shape_the_views() -> None:
    model = build("smore")
    model.loss(batch()).backward()
    for spectral_filter in [*model.spectrum.modality_filters, model.spectrum.fusion_filter]:
        assert spectral_filter.weight.grad is not None and spectral_filter.weight.grad.abs().sum() > 0
    before = [view.detach().clone() for view in model.spectral_views()]
    with torch.no_grad():
        for spectral_filter in model.spectrum.modality_filters:
            spectral_filter.weight.copy_(torch.tensor([1.0, 0.0]).expand_as(spectral_filter.weight))
    after = model.spectral_views()
    parts = torch.split(model.content, model.modality_dims, dim=1)
    for index, (part, projection) in enumerate(zip(parts, model.projections, strict=True)):
        assert torch.allclose(after[index], projection(part), atol=1e-5)  # all-ones filter: projection itself
        assert not torch.allclose(before[index], after[index], atol=1e-3)  # a learned filter changes it


def test_batch_rows_info_nce_equals_the_batch_by_batch_form_on_repeated_nodes() -> None:
    anchors = torch.randn(10, 4, requires_grad=True)
    candidates = torch.randn(10, 4, requires_grad=True)
    nodes = torch.tensor([3, 3, 1, 7, 3, 1, 0])  # node 3 on three rows: its own negative twice
    fast = batch_rows_info_nce(anchors, candidates, nodes, 0.2)
    rows = info_nce(anchors[nodes], candidates[nodes], torch.arange(len(nodes)), 0.2).mean()
    assert torch.allclose(fast, rows, atol=1e-6)
    for fast_grad, rows_grad in zip(
        torch.autograd.grad(fast, [anchors, candidates]), torch.autograd.grad(rows, [anchors, candidates]), strict=True
    ):
        assert torch.allclose(fast_grad, rows_grad, atol=1e-6)
    distinct = torch.unique(nodes)
    assert not torch.allclose(fast, info_nce(anchors[distinct], candidates[distinct], torch.arange(4), 0.2).mean())


@pytest.mark.parametrize("name", ["bm3", "smore"])
def test_trained_feature_tables_change_only_where_items_were_trained(name: str) -> None:
    model = train(build(name, train_features=True), steps=5)
    assert model.content_shift is not None
    changed = model.content_shift.detach().abs().sum(1) > 0
    assert bool(changed[:6].all())  # every warm item is a positive in the batch
    assert not bool(changed[COLD].any())  # a cold item's features reach no loss (SMORE: they gate a zero ID)
    assert build(name, train_features=False).state_dict().keys() < model.state_dict().keys()


def test_smore_errors_for_bad_knn_k_and_zero_variance_modality() -> None:
    with pytest.raises(ConfigError, match="knn_k"):
        build("smore", knn_k=NUM_ITEMS + 1)
    features = tiny_features()
    features["text"] = torch.ones(NUM_ITEMS, 6)
    with pytest.raises(ConfigError, match="zero variance"):
        build("smore", features=features)


# -- all three ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_missing_modality_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="audio"):
        build(name, modalities=("audio",))
    with pytest.raises(ConfigError, match="no feature table"):
        build(name, features={})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cold_items_are_scored_from_content_alone(name: str) -> None:
    model = train(build(name))
    users = torch.arange(NUM_USERS)
    scores = model.score(users)
    assert bool(torch.isfinite(scores).all())
    assert not torch.allclose(scores[:, COLD[0]], scores[:, COLD[1]])
    with torch.no_grad():  # the ID embedding of a cold item plays no part
        model.item_id.weight[COLD] = 100.0 * torch.randn(len(COLD), model.item_id.weight.shape[1])
    model.eval()  # drops the cached embeddings
    assert torch.allclose(model.score(users)[:, COLD], scores[:, COLD], atol=1e-5)
    features = tiny_features()
    features["image"][COLD] = features["image"][list(reversed(COLD))]  # swap the cold items' pictures
    features["text"][COLD] = features["text"][list(reversed(COLD))]
    swapped = build(name, features=features)
    swapped.load_state_dict(model.state_dict())
    assert torch.allclose(swapped.eval().score(users)[:, COLD], scores[:, list(reversed(COLD))], atol=1e-4)


# -- shared pieces ------------------------------------------------------------------------------------


def test_sparse_operator_matches_dense_product_and_gradient() -> None:
    dense = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    x = torch.randn(3, 4, requires_grad=True)
    y = SparseOperator(dense.to_sparse())(x)
    y.pow(2).sum().backward()
    x_dense = x.detach().clone().requires_grad_()
    (dense @ x_dense).pow(2).sum().backward()
    assert torch.allclose(y, dense @ x.detach()) and x.grad is not None
    assert torch.allclose(x.grad, x_dense.grad)  # type: ignore[arg-type]


def test_user_item_matrix_normalisations() -> None:
    users, items = torch.tensor([0, 0, 1, 0]), torch.tensor([0, 2, 2, 0])  # (0, 0) twice: counted once
    counts = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert torch.equal(user_item_matrix(2, 3, users, items, "none").to_dense(), counts)
    assert torch.allclose(user_item_matrix(2, 3, users, items, "mean").to_dense(), counts / counts.sum(1, True))
    sym = counts / counts.sum(1, True).sqrt() / counts.sum(0, True).clamp(min=1).sqrt()
    assert torch.allclose(user_item_matrix(2, 3, users, items, "sym").to_dense(), sym)
    with pytest.raises(ConfigError, match="normalization"):
        user_item_matrix(2, 3, users, items, "max")


def test_elementwise_max_over_the_union_of_entries() -> None:
    first = torch.tensor([[0.5, 0.0], [-0.2, 0.1]]).to_sparse()
    second = torch.tensor([[0.3, 0.7], [0.0, 0.4]]).to_sparse()
    expected = torch.tensor([[0.5, 0.7], [-0.2, 0.4]])  # -0.2 is stored only in the first: kept
    assert torch.allclose(elementwise_max([first, second]).to_dense(), expected)


def test_info_nce_matches_its_formula() -> None:
    anchors, candidates = torch.randn(3, 4), torch.randn(5, 4)
    positives = torch.tensor([4, 0, 2])
    similarity = F.normalize(anchors, dim=1) @ F.normalize(candidates, dim=1).T / 0.5
    expected = -torch.log(similarity.exp()[torch.arange(3), positives] / similarity.exp().sum(1))
    assert torch.allclose(info_nce(anchors, candidates, positives, 0.5), expected, atol=1e-5)
