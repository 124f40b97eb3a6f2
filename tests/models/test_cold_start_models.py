"""The cold-start family (DropoutNet, Heater, CLCRec, GAR, ALDI, content-kNN) and ColdBridge: each ranks items
it never trained on from their content, a frozen backbone stays frozen, and models without a content path
refuse the cold task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from modalrec.config import EvalConfig, TrainConfig
from modalrec.data.split import Pairs, Split
from modalrec.errors import ConfigError, ModalrecError
from modalrec.evaluate.evaluator import FullRankingEvaluator
from modalrec.models import ModelInputs, available_models, capabilities_of, get_model
from modalrec.models.aldi import ALDI, ALDIConfig, popularity_weights
from modalrec.models.base import Embeddings, TrainBatch
from modalrec.models.clcrec import TrainingPairs
from modalrec.models.coldbridge import ColdBridge, ColdBridgeConfig
from modalrec.models.contentmf import OTHER_MODALITY_WEIGHT, ContentMF, ContentMFConfig
from modalrec.models.dropoutnet import DropoutNet, DropoutNetConfig
from modalrec.models.gar import GAR, GARConfig
from modalrec.nn.coldstart import warm_neighbour_weights
from modalrec.train.run import seed_everything
from modalrec.train.trainer import Trainer

COLD_MODELS = ["aldi", "clcrec", "coldbridge", "contentknn", "contentmf", "dropoutnet", "gar", "heater"]
GROUPS, ITEMS_PER_GROUP, USERS_PER_GROUP, COLD_PER_GROUP = 4, 12, 10, 3


def taste_groups(seed: int = 0) -> tuple[Split, dict[str, torch.Tensor], np.ndarray]:
    """Users like every item of their group; an item's content says its group (plus noise). The last
    ``COLD_PER_GROUP`` items of each group have no training interaction: they are the test targets."""
    rng = np.random.default_rng(seed)
    num_users, num_items = GROUPS * USERS_PER_GROUP, GROUPS * ITEMS_PER_GROUP
    item_group = np.arange(num_items) // ITEMS_PER_GROUP
    cold = np.arange(num_items) % ITEMS_PER_GROUP >= ITEMS_PER_GROUP - COLD_PER_GROUP
    train_u, train_i, test_u, test_i = [], [], [], []
    for user in range(num_users):
        for item in np.flatnonzero(item_group == user % GROUPS):
            (test_u if cold[item] else train_u).append(user)
            (test_i if cold[item] else train_i).append(item)
    empty = Pairs(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    split = Split(num_users, num_items, Pairs(np.array(train_u), np.array(train_i)), empty,
                  Pairs(np.array(test_u), np.array(test_i)))
    onehot = np.eye(GROUPS, dtype=np.float32)[item_group]
    features = {"image": torch.from_numpy(np.hstack([onehot * 2, rng.normal(size=(num_items, 4))]).astype(np.float32)),
                "text": torch.from_numpy((onehot @ rng.normal(size=(GROUPS, 6)) + 0.3 * rng.normal(size=(num_items, 6)))
                                         .astype(np.float32))}
    return split, features, cold


def inputs_of(split: Split, features: dict[str, torch.Tensor], backbone: Embeddings | None = None) -> ModelInputs:
    return ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                       torch.from_numpy(split.train.items), features, backbone)


def trained(name: str, epochs: int = 40, **overrides: object):  # type: ignore[no-untyped-def]
    split, features, cold = taste_groups()
    entry = get_model(name)
    seed_everything(0)
    model = entry.model_class(entry.config_class(**overrides), inputs_of(split, features))
    if not capabilities_of(model).closed_form:
        config = TrainConfig(epochs=epochs, batch_size=64, learning_rate=0.01, patience=0, progress=False,
                             eval_every=epochs, early_stop_metric="recall@5")
        Trainer(model, split, config, EvalConfig(ks=(5,)), seed=0).fit(evaluate_test=False)
    return model.eval(), split, cold


def cold_recall(model, split: Split, cold: np.ndarray, k: int = COLD_PER_GROUP) -> float:  # type: ignore[no-untyped-def]
    """recall@k ranking only the cold items (warm ones masked), the cold task's setting."""
    warm_items = sp.diags((~cold).astype(np.float32))
    exclude = (split.matrix("train") + sp.csr_matrix(np.ones((split.num_users, split.num_items))) @ warm_items).tocsr()
    table = FullRankingEvaluator(split.matrix("test"), exclude, ks=(k,)).evaluate(model.score)
    return float(table.mean()[f"recall@{k}"])


@pytest.mark.parametrize("name", COLD_MODELS)
def test_cold_items_are_ranked_from_content_far_above_chance(name: str) -> None:
    """12 cold items, 3 of them the user's: chance recall@3 is 0.25; content says the group."""
    model, split, cold = trained(name)
    assert cold_recall(model, split, cold) >= 0.75


@pytest.mark.parametrize("name", COLD_MODELS)
def test_a_cold_item_scores_like_its_content_vector(name: str) -> None:
    model, split, cold = trained(name, epochs=3)
    _, features, _ = taste_groups()
    first_cold = int(np.flatnonzero(cold)[0])
    fresh = model.content_item_vectors({m: t[first_cold:first_cold + 1] for m, t in features.items()})
    users = model.embeddings().users
    assert torch.allclose(users @ fresh[0], model.score(torch.arange(split.num_users))[:, first_cold], atol=1e-5)


@pytest.mark.parametrize("name", ["aldi", "clcrec", "coldbridge", "dropoutnet", "gar", "heater"])
def test_a_backbone_run_is_frozen(name: str) -> None:
    split, features, cold = taste_groups()
    generator = torch.Generator().manual_seed(1)
    backbone = Embeddings(torch.randn(split.num_users, 8, generator=generator),
                          torch.randn(split.num_items, 8, generator=generator))
    entry = get_model(name)
    model = entry.model_class(entry.config_class(backbone_run="elsewhere"), inputs_of(split, features, backbone))
    config = TrainConfig(epochs=2, batch_size=64, patience=0, progress=False, eval_every=2,
                         early_stop_metric="recall@5")
    Trainer(model, split, config, EvalConfig(ks=(5,)), seed=0).fit(evaluate_test=False)
    users, items = model.backbone.vectors()
    assert torch.equal(users, backbone.users)
    assert torch.equal(items[~torch.from_numpy(cold)], backbone.items[~torch.from_numpy(cold)])
    assert not any(p.requires_grad and p.shape == (split.num_items, 8) for p in model.parameters())


def test_gar_fine_tunes_a_backbone_run_when_asked() -> None:
    """It starts from the run's vectors (cold rows zero) and the recommender then trains them on."""
    split, features, cold = taste_groups()
    generator = torch.Generator().manual_seed(1)
    backbone = Embeddings(torch.randn(split.num_users, 8, generator=generator),
                          torch.randn(split.num_items, 8, generator=generator))
    warm = ~torch.from_numpy(cold)
    model = GAR(GARConfig(backbone_run="elsewhere", backbone_finetune=True), inputs_of(split, features, backbone))
    users, items = model.backbone.vectors()
    assert torch.equal(users, backbone.users) and torch.equal(items[warm], backbone.items[warm])
    assert (items[~warm] == 0).all()
    config = TrainConfig(epochs=2, batch_size=64, patience=0, progress=False, eval_every=2,
                         early_stop_metric="recall@5")
    Trainer(model, split, config, EvalConfig(ks=(5,)), seed=0).fit(evaluate_test=False)
    users, items = model.backbone.vectors()
    assert not torch.allclose(users, backbone.users) and not torch.allclose(items[warm], backbone.items[warm])
    assert (items[~warm] == 0).all()
    with pytest.raises(ConfigError, match="model.backbone_finetune.: needs model.backbone_run"):
        GARConfig(backbone_finetune=True)


def test_gar_joint_updates_send_the_recommender_loss_to_the_generator() -> None:
    split, features, _ = taste_groups()
    batch = TrainBatch(torch.from_numpy(split.train.users[:32]), torch.from_numpy(split.train.items[:32]),
                       torch.arange(32) % split.num_items)
    gradients = []
    for joint in (False, True):
        torch.manual_seed(0)
        model = GAR(GARConfig(embedding_dim=8, joint_updates=joint), inputs_of(split, features))
        model.train().loss(batch).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.generator.parameters()]))
    assert not torch.allclose(gradients[0], gradients[1])


@pytest.mark.parametrize("name", ["aldi", "clcrec", "coldbridge", "dropoutnet", "gar", "heater"])
def test_a_backbone_run_that_was_not_loaded_is_a_config_error(name: str) -> None:
    split, features, _ = taste_groups()
    entry = get_model(name)
    with pytest.raises(ConfigError, match="backbone_run"):
        entry.model_class(entry.config_class(backbone_run="/runs/bpr"), inputs_of(split, features))


def test_coldbridge_keeps_warm_items_id_vectors_and_bridges_cold_ones() -> None:
    model, split, cold = trained("coldbridge", epochs=3)
    _, items = model.backbone.vectors()
    vectors, dim = model.embeddings().items, items.shape[1]
    warm = ~torch.from_numpy(cold)
    assert torch.equal(vectors[warm, :dim], items[warm]) and (vectors[warm, dim:] == 0).all()
    assert vectors[~warm, :dim].norm(dim=1).min() > 0 and vectors[~warm, dim:].norm(dim=1).min() > 0


def test_coldbridge_gate_blends_sparse_items_by_degree() -> None:
    split, features, _ = taste_groups()
    model = ColdBridge(ColdBridgeConfig(gate_degree=10.0), inputs_of(split, features))
    degree = np.bincount(split.train.items, minlength=split.num_items)
    assert torch.allclose(model.gate.squeeze(1), torch.from_numpy(degree / (degree + 10.0)).float())


def test_warm_neighbours_are_warm_and_never_the_item_itself() -> None:
    content = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.05]])
    warm = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    weights = warm_neighbour_weights(content, content, warm, k=1, query_rows=torch.arange(4))
    assert weights.argmax(1).tolist() == [1, 0, 1, 0]  # item 3 is cold: nobody's neighbour, and 0 is its own
    assert torch.allclose(weights.sum(1), torch.ones(4))


def test_aldi_popularity_weights_grow_with_popularity_and_are_capped() -> None:
    users = torch.tensor([0, 1, 2, 3, 0, 1, 0])
    items = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    weights = popularity_weights(4, 4, users, items, coef_m=2.0)
    assert weights[0] > weights[1] > weights[2] > weights[3] == 0
    assert weights.max() <= torch.tanh(torch.tensor(2.0)) + 1e-6


@pytest.mark.parametrize("name", [e.name for e in available_models() if not e.capabilities.cold_items])
def test_models_without_a_content_path_refuse_the_cold_task(name: str) -> None:
    split, features, cold = taste_groups()
    roles = np.where(cold, 2, 0).astype(np.int8)
    split = dataclasses.replace(split, valid=split.test, item_roles=roles)
    entry = get_model(name)
    model = entry.model_class(entry.config_class(), inputs_of(split, features))
    config = TrainConfig(epochs=1, progress=False, early_stop_metric="recall@5")
    with pytest.raises(ModalrecError, match="cold"):
        Trainer(model, split, config, EvalConfig(ks=(5,), task="cold"), seed=0)


def test_contentmf_cold_items_have_no_id_residual_and_warm_ones_learn_one() -> None:
    model, split, cold = trained("contentmf", epochs=5)
    content = model.projection(model.content)
    vectors = model.embeddings().items
    assert torch.allclose(vectors[torch.from_numpy(cold)], content[torch.from_numpy(cold)])
    assert (vectors[~torch.from_numpy(cold)] - content[~torch.from_numpy(cold)]).norm(dim=1).min() > 0


def test_contentmf_softmax_never_contains_cold_items() -> None:
    """The loss only ever reads warm items' vectors: a cold item's residual gets no gradient, and a change of
    a cold item's content leaves the loss unchanged."""
    split, features, cold = taste_groups()
    seed_everything(0)
    model = ContentMF(ContentMFConfig(id_dropout=0.0, feature_dropout=0.0), inputs_of(split, features))
    batch = TrainBatch(torch.from_numpy(split.train.users[:16]), torch.from_numpy(split.train.items[:16]),
                       torch.from_numpy(split.train.items[16:32]))
    before = model.loss(batch) - 0.5 * model.config.reg_weight * sum(p.pow(2).sum() for p in model.parameters())
    model.content[torch.from_numpy(cold)] += 5.0
    after = model.loss(batch) - 0.5 * model.config.reg_weight * sum(p.pow(2).sum() for p in model.parameters())
    assert torch.allclose(before, after)


def test_contentmf_sampled_softmax_still_ranks_cold_items() -> None:
    """With more warm items than ``softmax_items`` the loss reads the positive plus a uniform sample of 8."""
    model, split, cold = trained("contentmf", softmax_items=8)
    assert len(model.warm_items) > 8
    assert cold_recall(model, split, cold) >= 0.75


def test_contentmf_content_loss_adds_the_softmax_of_content_alone() -> None:
    """With ``content_loss_weight`` alpha the loss gains alpha times the softmax of the scores without any ID
    residual; the residuals are made large so that the term would differ if it read them."""
    split, features, _ = taste_groups()
    inputs = inputs_of(split, features)
    seed_everything(0)
    plain = ContentMF(ContentMFConfig(id_dropout=0.0, feature_dropout=0.0), inputs)
    with torch.no_grad():
        plain.id_residual.weight.normal_()
    weighted = ContentMF(ContentMFConfig(id_dropout=0.0, feature_dropout=0.0, content_loss_weight=0.5), inputs)
    weighted.load_state_dict(plain.state_dict())
    batch = TrainBatch(torch.from_numpy(split.train.users[:16]), torch.from_numpy(split.train.items[:16]),
                       torch.from_numpy(split.train.items[16:32]))
    vectors = plain.projection(plain.content[plain.warm_items])
    logits = plain.user_embedding(batch.users) @ vectors[:, :-1].T + vectors[:, -1]
    content_only = torch.nn.functional.cross_entropy(logits, plain.warm_position[batch.positive_items])
    assert torch.allclose(weighted.loss(batch), plain.loss(batch) + 0.5 * content_only)


def test_contentmf_modality_weights_scale_each_modality_for_catalogue_and_new_items() -> None:
    split, features, _ = taste_groups()
    inputs = inputs_of(split, features)
    first = {m: t[:3] for m, t in features.items()}
    text_only = ContentMF(ContentMFConfig(modality_weights={"image": 0.0, "text": 1.0}), inputs).eval()
    other_image = {"image": first["image"] + 5.0, "text": first["text"]}
    assert torch.allclose(text_only.content_item_vectors(other_image), text_only.content_item_vectors(first))
    assert torch.allclose(text_only.content_item_vectors(first), text_only.projection(text_only.content[:3]))
    plain = ContentMF(ContentMFConfig(modality_weights={"image": 1.0, "text": 1.0}), inputs)
    half = ContentMF(ContentMFConfig(modality_weights={"image": 0.5, "text": 1.0}), inputs)
    image_columns = plain.column_modality == 0
    assert torch.allclose(half.content[:, image_columns], 0.5 * plain.content[:, image_columns])
    assert torch.equal(half.content[:, ~image_columns], plain.content[:, ~image_columns])
    default = ContentMF(ContentMFConfig(), inputs)  # {}: text 1, the other modalities OTHER_MODALITY_WEIGHT
    assert torch.allclose(default.content[:, image_columns], OTHER_MODALITY_WEIGHT * plain.content[:, image_columns])
    assert torch.equal(default.content[:, ~image_columns], plain.content[:, ~image_columns])
    with pytest.raises(ConfigError, match="modality_weights"):
        ContentMF(ContentMFConfig(modality_weights={"text": 1.0}), inputs)
    with pytest.raises(ConfigError, match="modality_weights"):
        ContentMFConfig(modality_weights={"image": -1.0, "text": 1.0})


def test_contentmf_alignment_makes_the_modalities_agree() -> None:
    """Trained with ``alignment_weight``, an item's image-alone and text-alone projections point the same way
    (mean cosine) far more than when trained without it."""

    def agreement(model: ContentMF) -> float:
        image, text = (model.projection(model.content * (model.column_modality == m))[:, :-1] for m in (0, 1))
        return float(torch.nn.functional.cosine_similarity(image, text).mean())

    equal = {"image": 1.0, "text": 1.0}
    aligned, _, _ = trained("contentmf", epochs=10, alignment_weight=1.0, modality_weights=equal)
    plain, _, _ = trained("contentmf", epochs=10, modality_weights=equal)
    with torch.no_grad():
        assert agreement(aligned) > agreement(plain) + 0.15


def test_contentmf_alignment_needs_two_modalities() -> None:
    split, features, _ = taste_groups()
    with pytest.raises(ConfigError, match="alignment_weight"):
        ContentMF(ContentMFConfig(alignment_weight=0.1, modalities=("image",)), inputs_of(split, features))


@pytest.mark.parametrize("dense", [True, False])
def test_clcrec_training_pairs_answer_membership_like_a_set(dense: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both layouts (a dense table on small data, sorted pair codes above ``DENSE_CELLS``) say exactly which
    (user, item) pairs are training interactions, for a whole group's user x candidate grid at once."""
    monkeypatch.setattr(TrainingPairs, "DENSE_CELLS", 10**9 if dense else 0)
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 30, 200), rng.integers(0, 50, 200)
    pairs = TrainingPairs(30, 50, torch.from_numpy(users), torch.from_numpy(items))
    assert pairs.dense is dense
    queried_users, queried_items = torch.arange(30)[:, None], torch.arange(50)[None, :]
    expected = torch.zeros(30, 50, dtype=torch.bool)
    for user, item in set(zip(users.tolist(), items.tolist(), strict=True)):
        expected[user, item] = True
    assert torch.equal(pairs.contains(queried_users, queried_items), expected)
    empty = TrainingPairs(30, 50, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert not empty.contains(queried_users, queried_items).any()


def test_dropoutnet_loss_is_the_regression_of_every_pair_through_both_towers() -> None:
    """f_U runs once per distinct user and f_V once per distinct (item, kept) pair; the loss is still the
    paper's regression with both towers applied to every (user, item) pair of the batch, dropout included."""
    split, features, _ = taste_groups()
    seed_everything(0)
    model = DropoutNet(DropoutNetConfig(train_precision="float32"), inputs_of(split, features))
    batch = TrainBatch(torch.from_numpy(split.train.users[:32]), torch.from_numpy(split.train.items[:32]),
                       torch.from_numpy(split.train.items[100:132]))
    torch.manual_seed(5)
    loss = model.loss(batch) - model.backbone.bpr(batch.users, batch.positive_items, batch.negative_items,
                                                  model.config.reg_weight)
    users_all, items_all = model.backbone.vectors()
    items = torch.cat([batch.positive_items, batch.negative_items])
    user, preference = users_all[torch.cat([batch.users, batch.users])], items_all[items]
    torch.manual_seed(5)
    kept = (torch.rand(len(items), 1) >= model.config.n_dropout).float()
    predicted = (model.user_tower(user) * model.item_vectors(kept * preference, model.item_content_layer(
        model.content[items]))).sum(1)
    expected = 0.5 * ((predicted - (user * preference).sum(1)) ** 2).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_aldi_loss_is_the_papers_with_the_student_user_tower_on_every_triple() -> None:
    """f_U runs once per distinct user and the identification distance uses the negatives' mean vector; the
    loss is still the paper's, with f_U applied to every triple and d_i averaged over every (i, j) pair."""
    split, features, _ = taste_groups()
    seed_everything(0)
    model = ALDI(ALDIConfig(tws=True), inputs_of(split, features))
    batch = TrainBatch(torch.from_numpy(split.train.users[:32]), torch.from_numpy(split.train.items[:32]),
                       torch.from_numpy(split.train.items[100:132]))
    c = model.config
    loss = model.loss(batch) - model.backbone.bpr(batch.users, batch.positive_items, batch.negative_items,
                                                  c.reg_weight)
    users_all, items_all = model.backbone.vectors()
    user = users_all[batch.users]
    positive, negative = items_all[batch.positive_items], items_all[batch.negative_items]
    student_user = model.user_tower(user)
    student_pos, student_neg = model.item_tower(model.content[batch.positive_items]), model.item_tower(
        model.content[batch.negative_items])

    def distance(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return torch.stack([pos[i] @ pos[i] - sum(pos[i] @ neg[j] for j in range(len(neg))) / len(neg)
                            for i in range(len(pos))])

    t_pos, t_neg = (user * positive).sum(1), (user * negative).sum(1)
    s_pos, s_neg = (student_user * student_pos).sum(1), (student_user * student_neg).sum(1)
    weight = model.item_weights[batch.positive_items]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = (-torch.nn.functional.logsigmoid(s_pos - s_neg).mean()
                + c.gamma * ((t_pos - s_pos).abs() + (t_neg - s_neg).abs()).mean()
                + c.alpha * (weight * bce(s_pos - s_neg, torch.sigmoid(t_pos - t_neg), reduction="none")).mean()
                + c.beta * (weight * bce(distance(student_pos, student_neg),
                                         torch.sigmoid(distance(positive, negative)), reduction="none")).mean())
    assert torch.allclose(loss, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["aldi", "clcrec", "dropoutnet", "gar", "heater"])
def test_refiners_read_content_in_bfloat16_while_training_and_in_float32_when_scoring(name: str) -> None:
    split, features, _ = taste_groups()
    entry = get_model(name)
    generator = torch.Generator().manual_seed(1)
    rows = torch.randint(len(split.train.users), (24,), generator=generator)
    batch = TrainBatch(torch.from_numpy(split.train.users)[rows], torch.from_numpy(split.train.items)[rows],
                       torch.randint(split.num_items, (24,), generator=generator))
    models, losses = {}, {}
    for precision in ("float32", "bfloat16"):
        seed_everything(0)
        models[precision] = entry.model_class(entry.config_class(train_precision=precision), inputs_of(split, features))
        torch.manual_seed(2)  # the same dropout draws on both sides
        losses[precision] = models[precision].loss(batch)
    assert torch.allclose(losses["bfloat16"], losses["float32"], rtol=0.05, atol=1e-3)
    gradients = {}
    for precision, loss in losses.items():
        loss.backward()
        gradients[precision] = [p.grad for p in models[precision].parameters() if p.grad is not None]
    assert all(g.dtype == torch.float32 for g in gradients["bfloat16"])
    assert any(not torch.equal(low, exact)  # the content layers did run in bfloat16
               for low, exact in zip(gradients["bfloat16"], gradients["float32"], strict=True))
    with torch.no_grad():
        scores = [models[p].eval().compute_embeddings() for p in ("float32", "bfloat16")]
    assert torch.equal(scores[0].items, scores[1].items) and torch.equal(scores[0].users, scores[1].users)
