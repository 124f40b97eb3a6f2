"""FREEDOM and LATTICE: degree-sensitive pruning, the frozen and learned item graphs, cold items, errors."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import pytest
import torch
import torch.nn.functional as F

from modalrec.errors import ConfigError
from modalrec.models import ModelInputs, TrainBatch
from modalrec.models.freedom import FREEDOM, FREEDOMConfig
from modalrec.models.lattice import LATTICE, LATTICEConfig
from modalrec.nn.pruning import degree_sensitive_weights, prune_edges

# A skewed graph: user 0 and item 0 touch everything (degree 8), the rest have degree 2.
# Weights 1/sqrt(d_u d_i): (0, 0) -> 1/8, (0, i) and (u, 0) -> 1/4, (u, u) -> 1/2.
HUB_USERS = torch.tensor([0] * 8 + list(range(1, 8)) + list(range(1, 8)))
HUB_ITEMS = torch.tensor(list(range(8)) + [0] * 7 + list(range(1, 8)))

NUM_USERS, NUM_ITEMS, COLD = 6, 10, 9  # item 9 has no training interaction
USERS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5])
ITEMS = torch.tensor([0, 1, 2, 1, 3, 4, 5, 6, 7, 8, 0, 2, 4, 6])
Config = FREEDOMConfig | LATTICEConfig
Model = TypeVar("Model", FREEDOM, LATTICE)
MODELS: list[tuple[type[FREEDOM | LATTICE], Config]] = [
    (FREEDOM, FREEDOMConfig(embedding_dim=8, content_dim=4, knn_k=3)),
    (LATTICE, LATTICEConfig(embedding_dim=8, content_dim=4, knn_k=3)),
]


def features(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(NUM_ITEMS, 5, generator=generator),
            "text": torch.randn(NUM_ITEMS, 3, generator=generator)}


def inputs(tables: dict[str, torch.Tensor] | None = None) -> ModelInputs:
    return ModelInputs(NUM_USERS, NUM_ITEMS, USERS, ITEMS, features() if tables is None else tables)


def build(model_class: type[Model], config: Config, tables: dict[str, torch.Tensor] | None = None) -> Model:
    torch.manual_seed(0)
    return model_class(config, inputs(tables))  # type: ignore[arg-type]


def dense_binary_knn(table: torch.Tensor, k: int) -> torch.Tensor:
    """Every row keeps k ones, so D^-1/2 A D^-1/2 = A / k."""
    unit = F.normalize(table, dim=1)
    top = torch.topk(unit @ unit.T, k, dim=1).indices
    return torch.zeros(len(table), len(table)).scatter_(1, top, 1.0) / k


def one_batch() -> TrainBatch:
    return TrainBatch(USERS[:6], ITEMS[:6], torch.tensor([8, 7, 6, 5, 4, 3]))


# -- degree-sensitive edge pruning ---------------------------------------------------------------

def test_a_single_draw_follows_the_inverse_sqrt_degree_law() -> None:
    weights = degree_sensitive_weights(HUB_USERS, HUB_ITEMS)
    assert weights[0] == pytest.approx(1 / 8) and weights[1] == pytest.approx(1 / 4)
    assert weights[-1] == pytest.approx(1 / 2)
    torch.manual_seed(0)
    trials, drop_all_but_one = 10_000, 1 - 1.5 / len(HUB_USERS)  # keeps floor(1.5) = 1 edge
    counts = torch.zeros(len(HUB_USERS))
    for _ in range(trials):
        users, items = prune_edges(HUB_USERS, HUB_ITEMS, weights, drop_all_but_one)
        counts[(HUB_USERS == users) & (HUB_ITEMS == items)] += 1
    expected = weights / weights.sum()
    assert torch.allclose(counts / trials, expected, atol=4 * (expected / trials).sqrt().max().item())


def test_pruning_keeps_the_fraction_and_prefers_low_degree_edges() -> None:
    weights = degree_sensitive_weights(HUB_USERS, HUB_ITEMS)
    torch.manual_seed(0)
    kept = torch.zeros(len(HUB_USERS))
    for _ in range(4000):
        users, items = prune_edges(HUB_USERS, HUB_ITEMS, weights, 0.8)
        assert len(users) == int(0.2 * len(HUB_USERS))
        kept += ((HUB_USERS[:, None] == users) & (HUB_ITEMS[:, None] == items)).any(1).float()
    rate = {w: kept[weights == w].mean().item() / 4000 for w in (1 / 8, 1 / 4, 1 / 2)}
    assert rate[1 / 8] < rate[1 / 4] < rate[1 / 2]
    assert rate[1 / 2] == pytest.approx(2 * rate[1 / 4], rel=0.25)  # near-proportional at a 20% keep rate


def test_no_pruning_at_drop_ratio_zero_and_bad_ratios_refused() -> None:
    weights = degree_sensitive_weights(HUB_USERS, HUB_ITEMS)
    users, items = prune_edges(HUB_USERS, HUB_ITEMS, weights, 0.0)
    assert torch.equal(users, HUB_USERS) and torch.equal(items, HUB_ITEMS)
    with pytest.raises(ConfigError, match="drop ratio must be in"):
        prune_edges(HUB_USERS, HUB_ITEMS, weights, 1.0)
    with pytest.raises(ConfigError, match="model.dropout"):
        FREEDOMConfig(dropout=1.0)


def test_freedom_prunes_per_epoch_under_the_seed_and_never_in_eval() -> None:
    model = build(FREEDOM, FREEDOMConfig(embedding_dim=8, knn_k=3, dropout=0.5))
    edges = len(USERS)
    graphs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        model.train()
        graphs.append(model.pruned_adjacency().to_dense())
        assert torch.equal(model.pruned_adjacency().to_dense(), graphs[-1])  # one graph per epoch
    assert int((graphs[0] > 0).sum()) == 2 * int(0.5 * edges)
    assert torch.equal(graphs[0], graphs[1]) and not torch.equal(graphs[0], graphs[2])
    model.eval()
    unpruned = build(FREEDOM, FREEDOMConfig(embedding_dim=8, knn_k=3, dropout=0.0))
    unpruned.load_state_dict(model.state_dict())
    unpruned.train()  # no pruning at all, even in training mode
    assert torch.allclose(model.score(torch.arange(NUM_USERS)), unpruned.compute_embeddings().users
                          @ unpruned.compute_embeddings().items.T, atol=1e-6)


# -- FREEDOM's frozen item-item graph ------------------------------------------------------------

@pytest.mark.parametrize(("weights", "expected"), [({}, {"image": 0.1, "text": 0.9}),
                                                    ({"image": 1.0, "text": 3.0}, {"image": 0.25, "text": 0.75})])
def test_frozen_graph_is_the_weighted_sum_of_modality_graphs(weights: dict[str, float],
                                                             expected: dict[str, float]) -> None:
    tables = features()
    model = build(FREEDOM, FREEDOMConfig(knn_k=4, modality_weights=weights), tables)
    reference = sum(expected[m] * dense_binary_knn(tables[m], 4) for m in tables)
    assert model.item_graph.layout == torch.sparse_csr
    assert torch.allclose(model.item_graph.to_dense(), reference, atol=1e-6)  # type: ignore[arg-type]


def test_default_weights_without_text_are_equal_and_text_leads_otherwise() -> None:
    tables = features()
    tables["audio"] = torch.randn(NUM_ITEMS, 4, generator=torch.Generator().manual_seed(7))
    model = build(FREEDOM, FREEDOMConfig(knn_k=4), tables)
    reference = 0.05 * dense_binary_knn(tables["audio"], 4) + 0.05 * dense_binary_knn(tables["image"], 4)
    reference += 0.9 * dense_binary_knn(tables["text"], 4)
    assert torch.allclose(model.item_graph.to_dense(), reference, atol=1e-6)
    no_text = build(FREEDOM, FREEDOMConfig(knn_k=4, modalities=("image", "audio")), tables)
    reference = 0.5 * dense_binary_knn(tables["audio"], 4) + 0.5 * dense_binary_knn(tables["image"], 4)
    assert torch.allclose(no_text.item_graph.to_dense(), reference, atol=1e-6)


# -- LATTICE's learned item-item graph -----------------------------------------------------------

def test_lattice_learned_graph_is_sparse_and_moves_with_training() -> None:
    model = build(LATTICE, LATTICEConfig(embedding_dim=8, content_dim=4, knn_k=3))
    before = model.learned_graphs()
    assert all(g.layout == torch.sparse_csr and g._nnz() == NUM_ITEMS * 3 for g in before)
    assert model.build_item_graph()._nnz() <= 2 * 2 * NUM_ITEMS * 3
    model.train()
    model.loss(one_batch()).backward()
    projection = model.projections[0]
    assert isinstance(projection, torch.nn.Linear)
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    assert model.modality_logits.grad is not None
    with torch.no_grad():  # one gradient step
        for parameter in model.parameters():
            assert parameter.grad is not None
            parameter.sub_(0.5 * parameter.grad)
            parameter.grad = None
    model.loss(one_batch()).backward()  # the rest of the epoch reuses the graph, detached
    assert projection.weight.grad is None and model.modality_logits.grad is None
    after = model.learned_graphs()
    assert any(not torch.equal(a.to_dense(), b.to_dense()) for a, b in zip(after, before, strict=True))


def test_lattice_item_graph_combines_learned_and_original_with_softmax_weights() -> None:
    model = build(LATTICE, LATTICEConfig(embedding_dim=8, content_dim=4, knn_k=3, lambda_coeff=0.9))
    with torch.no_grad():
        model.modality_logits.copy_(torch.tensor([0.0, torch.log(torch.tensor(3.0))]))  # alpha = 0.25, 0.75
        learned = [g.to_dense() for g in model.learned_graphs()]
        rows = torch.arange(NUM_ITEMS).repeat_interleave(3)
        originals = [torch.zeros(NUM_ITEMS, NUM_ITEMS).index_put_((rows, c.flatten()), v.flatten(), accumulate=True)
                     for c, v in zip(model.original_cols, model.original_values, strict=True)]
        expected = sum(a * (0.1 * s + 0.9 * o) for a, s, o in zip((0.25, 0.75), learned, originals, strict=True))
        assert torch.allclose(model.build_item_graph().to_dense(), expected, atol=1e-6)  # type: ignore[arg-type]


# -- both models ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("model_class", "config"), MODELS)
def test_cold_items_get_content_dependent_finite_scores(model_class: type[Model], config: Config) -> None:
    users = torch.arange(NUM_USERS)
    scores = []
    for twin in (1, 6):  # the cold item copies the content of warm item 1, then of warm item 6
        tables = {m: t.clone() for m, t in features().items()}
        for table in tables.values():
            table[COLD] = table[twin]
        model = build(model_class, config, tables).eval()
        scores.append(model.score(users)[:, COLD])
        assert torch.isfinite(scores[-1]).all() and scores[-1].abs().sum() > 0
        with torch.no_grad():
            model.item_embedding.weight[COLD] += 100.0
        model.train().eval()
        assert torch.equal(model.score(users)[:, COLD], scores[-1])  # the cold item's own ID plays no part
    assert not torch.allclose(scores[0], scores[1])


@pytest.mark.parametrize(("model_class", "config"), MODELS)
def test_bad_content_and_settings_are_refused(model_class: type[Model], config: Config) -> None:
    with pytest.raises(ConfigError, match="asked for 11 neighbours, but there are 10 items"):
        build(model_class, dataclasses.replace(config, knn_k=11))
    flat = features()
    flat["image"] = torch.ones(NUM_ITEMS, 5)
    with pytest.raises(ConfigError, match="modality 'image' has zero variance"):
        build(model_class, config, flat)
    with pytest.raises(ConfigError, match="asked for modality 'audio'"):
        build(model_class, dataclasses.replace(config, modalities=("audio",)))
    with pytest.raises(ConfigError, match="no feature table"):
        build(model_class, config, {})
    with pytest.raises(ConfigError, match="knn_k"):
        type(config)(knn_k=0)


def test_freedom_modality_weights_must_name_the_modalities() -> None:
    with pytest.raises(ConfigError, match="expected a weight for each of image, text, found image"):
        build(FREEDOM, FREEDOMConfig(knn_k=3, modality_weights={"image": 1.0}))
    with pytest.raises(ConfigError, match="must be >= 0"):
        FREEDOMConfig(modality_weights={"image": -1.0, "text": 1.0})


# -- FREEDOM's modality loss -------------------------------------------------------------------------------
def modality_loss_from_the_definition(freedom: FREEDOM, user: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    """lambda's sum over modalities of BPR(e_u . (W_m x_i + b_m), e_u . (W_m x_j + b_m)), in float32."""
    total = torch.zeros(())
    for projection, table in zip(freedom.projections, torch.split(freedom.content, freedom.modality_dims, 1),
                                 strict=True):
        projected = projection(table)
        total = total + F.softplus(-((user * projected[batch.positive_items]).sum(1)
                                     - (user * projected[batch.negative_items]).sum(1))).mean()
    return total


@pytest.mark.parametrize("batch_size", [3, 6])  # 2 x 3 draws: fewer than the 10 items (distinct rows); 12: more
@pytest.mark.parametrize(("precision", "tolerance"), [("float32", 1e-6), ("bfloat16", 2e-2)])
def test_freedom_modality_loss_is_its_definition_in_either_precision(batch_size: int, precision: str,
                                                                     tolerance: float) -> None:
    freedom = build(FREEDOM, FREEDOMConfig(embedding_dim=8, content_dim=8, knn_k=3, train_precision=precision))
    batch = TrainBatch(USERS[:batch_size], ITEMS[:batch_size], torch.arange(batch_size) % 3 + COLD - 2)
    user = torch.randn(batch_size, 8)
    found, expected = freedom.modality_loss(user, batch), modality_loss_from_the_definition(freedom, user, batch)
    assert torch.allclose(found, expected, rtol=tolerance, atol=0)
    if precision == "bfloat16":
        assert found != expected  # the projections did run in bfloat16
    found.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in freedom.projections.parameters())
