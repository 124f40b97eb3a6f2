"""MMGCN: per-modality branches, the fused score, cold items and the propagation matrix."""

from __future__ import annotations

import pytest
import torch

from modalrec.errors import ConfigError
from modalrec.models import ModelInputs
from modalrec.models.base import TrainBatch
from modalrec.models.mmgcn import MMGCN, MMGCNConfig
from modalrec.nn import bpr_loss
from modalrec.nn.gcn import GraphAggregation

NUM_USERS, NUM_ITEMS = 4, 6
USERS = torch.tensor([0, 0, 1, 1, 2, 3, 3])
ITEMS = torch.tensor([0, 1, 1, 2, 3, 0, 3])  # items 4 and 5 have no training interaction (cold)
COLD = [4, 5]


def tiny_inputs(features: dict[str, torch.Tensor] | None = None) -> ModelInputs:
    generator = torch.Generator().manual_seed(0)
    if features is None:
        features = {
            "image": torch.randn(NUM_ITEMS, 5, generator=generator),
            "text": torch.randn(NUM_ITEMS, 3, generator=generator),
        }
    return ModelInputs(NUM_USERS, NUM_ITEMS, USERS, ITEMS, features)


def tiny_model(**config: object) -> MMGCN:
    """Gates off unless asked for: the branches' arithmetic is checked on the paper's form."""
    torch.manual_seed(0)
    config = {"modality_gate": False, **config}
    return MMGCN(MMGCNConfig(embedding_dim=8, **config), tiny_inputs())  # type: ignore[arg-type]


def dense_gcn_matrix() -> torch.Tensor:
    """D~^-1/2 (A + I) D~^-1/2 of the tiny user-item graph, written out densely."""
    n = NUM_USERS + NUM_ITEMS
    a = torch.zeros(n, n)
    a[USERS, NUM_USERS + ITEMS] = 1.0
    a[NUM_USERS + ITEMS, USERS] = 1.0
    a_tilde = a + torch.eye(n)
    d_inv_sqrt = torch.diag(a_tilde.sum(1).pow(-0.5))
    return d_inv_sqrt @ a_tilde @ d_inv_sqrt


@pytest.mark.parametrize("concat", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_per_modality_representation_shapes(concat: bool, num_layers: int) -> None:
    model = tiny_model(concat=concat, num_layers=num_layers)
    representations = model.modality_representations()
    assert list(representations) == ["image", "text"]
    assert all(r.shape == (NUM_USERS + NUM_ITEMS, 8) for r in representations.values())


@pytest.mark.parametrize(("fusion", "id_branch", "width"),
                         [("sum", True, 8), ("sum", False, 8), ("concat", True, 24), ("concat", False, 16)])
def test_embedding_shapes(fusion: str, id_branch: bool, width: int) -> None:
    vectors = tiny_model(fusion=fusion, id_branch=id_branch).eval().embeddings()
    assert vectors.users.shape == (NUM_USERS, width) and vectors.items.shape == (NUM_ITEMS, width)


def dense_lightgcn_matrix() -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the tiny user-item graph (no self-loops), written out densely."""
    n = NUM_USERS + NUM_ITEMS
    a = torch.zeros(n, n)
    a[USERS, NUM_USERS + ITEMS] = 1.0
    a[NUM_USERS + ITEMS, USERS] = 1.0
    degree = a.sum(1)
    d_inv_sqrt = torch.diag(torch.where(degree > 0, degree.pow(-0.5), torch.zeros(n)))
    return d_inv_sqrt @ a @ d_inv_sqrt


@pytest.mark.parametrize("num_layers", [1, 2])
def test_id_branch_is_the_mean_of_propagated_id_embeddings(num_layers: int) -> None:
    model = tiny_model(num_layers=num_layers).eval()
    ids = model.id_embedding.weight.detach().clone()
    ids[[NUM_USERS + c for c in COLD]] = 0.0  # cold items carry no ID embedding
    matrix, layer, total = dense_lightgcn_matrix(), ids, ids
    for _ in range(num_layers):
        layer = matrix @ layer
        total = total + layer
    assert torch.allclose(model.id_representation(), total / (num_layers + 1), atol=1e-5)


def test_sum_fusion_adds_the_id_branch_to_the_modality_sum() -> None:
    model = tiny_model(fusion="sum").eval()
    fused = sum(model.modality_representations().values()) + model.id_representation()
    expected = fused[:NUM_USERS] @ fused[NUM_USERS:].T  # (sum_m u_m + e_u) . (sum_m i_m + e_i)
    assert torch.allclose(model.score(torch.arange(NUM_USERS)), expected, atol=1e-5)


def test_concat_fusion_scores_sum_per_modality_dot_products() -> None:
    model = tiny_model(fusion="concat", id_branch=False).eval()
    expected = torch.zeros(NUM_USERS, NUM_ITEMS)
    for representation in model.modality_representations().values():
        users, items = representation[:NUM_USERS], representation[NUM_USERS:]
        expected += users @ items.T  # u_m . i_m
    assert torch.allclose(model.score(torch.arange(NUM_USERS)), expected, atol=1e-5)


def test_sum_fusion_scores_dot_product_of_modality_sums() -> None:
    model = tiny_model(fusion="sum", id_branch=False).eval()
    representations = list(model.modality_representations().values())
    users = sum(r[:NUM_USERS] for r in representations)
    items = sum(r[NUM_USERS:] for r in representations)
    expected = users @ items.T  # (sum_m u_m) . (sum_m i_m)
    assert torch.allclose(model.score(torch.arange(NUM_USERS)), expected, atol=1e-5)


def test_cold_items_are_scored_from_content_alone() -> None:
    model = tiny_model().eval()
    scores = model.score(torch.arange(NUM_USERS))
    assert torch.isfinite(scores).all()
    assert not torch.allclose(scores[:, COLD[0]], scores[:, COLD[1]])  # different features, different scores
    with torch.no_grad():  # a cold item's ID embedding never reaches its score
        model.id_embedding.weight[NUM_USERS + COLD[0]] += 5.0
    model.train().eval()
    assert torch.equal(model.score(torch.arange(NUM_USERS)), scores)


def test_cold_item_score_follows_its_features() -> None:
    inputs = tiny_inputs()
    changed = {m: t.clone() for m, t in inputs.features.items()}
    changed["image"][COLD[0]] = changed["image"][COLD[1]]
    changed["text"][COLD[0]] = changed["text"][COLD[1]]
    torch.manual_seed(0)
    model = MMGCN(MMGCNConfig(embedding_dim=8), ModelInputs(NUM_USERS, NUM_ITEMS, USERS, ITEMS, changed)).eval()
    scores = model.score(torch.arange(NUM_USERS))
    assert torch.allclose(scores[:, COLD[0]], scores[:, COLD[1]], atol=1e-6)  # same features, same score


@pytest.mark.parametrize("aggregation", ["add", "mean"])
@pytest.mark.parametrize("fusion", ["sum", "concat"])
@pytest.mark.parametrize("id_branch", [True, False])
def test_new_items_get_the_vectors_of_cold_catalogue_items(aggregation: str, fusion: str, id_branch: bool) -> None:
    model = tiny_model(aggregation=aggregation, fusion=fusion, id_branch=id_branch).eval()
    raw = {m: t[COLD] for m, t in tiny_inputs().features.items()}
    assert torch.allclose(model.content_item_vectors(raw), model.embeddings().items[COLD], atol=1e-5)


def test_add_aggregation_is_the_gcn_matrix() -> None:
    aggregate = GraphAggregation(NUM_USERS, NUM_ITEMS, USERS, ITEMS, "add")
    identity = torch.eye(NUM_USERS + NUM_ITEMS)
    assert torch.allclose(aggregate(identity), dense_gcn_matrix(), atol=1e-6)


def test_mean_aggregation_averages_the_neighbourhood_and_self() -> None:
    aggregate = GraphAggregation(NUM_USERS, NUM_ITEMS, USERS, ITEMS, "mean")
    n = NUM_USERS + NUM_ITEMS
    a_tilde = torch.eye(n)
    a_tilde[USERS, NUM_USERS + ITEMS] = 1.0
    a_tilde[NUM_USERS + ITEMS, USERS] = 1.0
    expected = a_tilde / a_tilde.sum(1, keepdim=True)  # D~^-1 (A + I)
    assert torch.allclose(aggregate(torch.eye(n)), expected, atol=1e-6)


def test_mean_aggregation_gradient_matches_dense() -> None:
    aggregate = GraphAggregation(NUM_USERS, NUM_ITEMS, USERS, ITEMS, "mean")
    x = torch.randn(NUM_USERS + NUM_ITEMS, 3, requires_grad=True)
    weights = torch.randn(NUM_USERS + NUM_ITEMS, 3)
    (aggregate(x) * weights).sum().backward()
    dense = aggregate(torch.eye(NUM_USERS + NUM_ITEMS))
    assert x.grad is not None and torch.allclose(x.grad, dense.T @ weights, atol=1e-5)


def test_unknown_modality_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="audio"):
        MMGCN(MMGCNConfig(modalities=("audio",)), tiny_inputs())


def test_no_features_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no feature table"):
        MMGCN(MMGCNConfig(), tiny_inputs(features={}))


@pytest.mark.parametrize(("key", "value"), [("aggregation", "max"), ("fusion", "product"), ("num_layers", 0)])
def test_bad_config_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        MMGCNConfig(**{key: value})  # type: ignore[arg-type]


def test_output_penalty_is_on_the_vectors_the_score_dots() -> None:
    model = tiny_model(reg_weight=0.0, output_reg_weight=1.0).train()
    batch = TrainBatch(torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 5]))
    with torch.no_grad():
        vectors = model.compute_embeddings()
        user, positive, negative = (vectors.users[batch.users], vectors.items[batch.positive_items],
                                    vectors.items[batch.negative_items])
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        expected = (user.pow(2).sum() + positive.pow(2).sum() + negative.pow(2).sum()) / 4
        assert (model.loss(batch) - ranking).item() == pytest.approx(expected.item(), rel=1e-5)


def test_modality_gates_start_closed_so_training_starts_from_the_id_branch() -> None:
    model = tiny_model(modality_gate=True, fusion="sum").eval()
    vectors = model.embeddings()
    users, items = torch.split(model.id_representation(), [NUM_USERS, NUM_ITEMS])
    assert torch.equal(vectors.users, users) and torch.equal(vectors.items, items)
    new_items = model.content_item_vectors({"image": torch.randn(2, 5), "text": torch.randn(2, 3)})
    assert torch.equal(new_items, torch.zeros(2, 8))  # no ID, no edges, every gate closed


def test_modality_gates_learn_and_then_let_content_in() -> None:
    model = tiny_model(modality_gate=True).train()
    batch = TrainBatch(USERS, ITEMS, torch.tensor([4, 5, 4, 5, 4, 5, 4]))
    model.loss(batch).backward()
    assert model.gates is not None and model.gates.grad is not None
    assert bool((model.gates.grad != 0).all())
    with torch.no_grad():
        model.gates.fill_(0.5)
    scaled = model.modality_representations()["image"]
    with torch.no_grad():
        model.gates.fill_(1.0)
    assert torch.allclose(scaled, 0.5 * model.modality_representations()["image"])


def test_modality_gates_need_the_id_branch() -> None:
    with pytest.raises(ConfigError, match="id_branch"):
        MMGCNConfig(modality_gate=True, id_branch=False)


def test_modality_gates_cannot_open_with_concatenation() -> None:
    # the score holds g^2 u_m.i_m: at g = 0 its gradient is 0, so the gates would stay shut (found on ml100k,
    # where such a run scored like the ID branch alone)
    with pytest.raises(ConfigError, match="fusion=concat"):
        MMGCNConfig(modality_gate=True, fusion="concat")
