"""MMDFM and MMAL beyond the shared contract: the FM algebra, fusion modes, re-ranking, explanations, cold items."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_model_contract import BLOCK, block_split, fit
from torch import Tensor, nn

from modalrec.config import build
from modalrec.errors import ConfigError
from modalrec.evaluate.evaluator import FullRankingEvaluator
from modalrec.models import ModelInputs
from modalrec.models.base import NotSupported, TrainBatch
from modalrec.models.mmal import MMAL, MMALConfig
from modalrec.models.mmdfm import MMDFM, MMDFMConfig
from modalrec.nn import bpr_loss
from modalrec.nn.fusion import FUSION_MODES
from modalrec.train.run import seed_everything

COLD_ITEM = 19  # dropped from training below, so it is cold


def inputs_with_cold_item(features: dict[str, Tensor] | None = None) -> ModelInputs:
    split, block_features = block_split()
    keep = split.train.items != COLD_ITEM
    return ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users[keep]),
                       torch.from_numpy(split.train.items[keep]), block_features if features is None else features)


def mmdfm(seed: int = 0, **changes: object) -> MMDFM:
    seed_everything(seed)
    return MMDFM(MMDFMConfig(**changes), inputs_with_cold_item()).eval()  # type: ignore[arg-type]


def randomise(model: nn.Module) -> nn.Module:
    """Random values everywhere, biases included (several start at zero)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


# -- the FM algebra ------------------------------------------------------------------------------------

class Constant(nn.Module):
    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, tables: object) -> Tensor:
        return self.value


def test_fm_score_by_hand() -> None:
    """One user, one item, k = 2: v_u = (1,2), v_id = (0,1), v_image = (1,0), v_text = (2,1).

    All pairs: <u,id> + <u,image> + <u,text> + <id,image> + <id,text> + <image,text> = 2 + 1 + 4 + 0 + 1 + 2 = 10.
    Factorised: <v_u, (3,2)> = 7, plus item-item 1/2 (|(3,2)|^2 - (1 + 1 + 5)) = 1/2 (13 - 7) = 3, total 10.
    """
    features = {"image": torch.ones(1, 3), "text": torch.ones(1, 2)}
    inputs = ModelInputs(1, 1, torch.tensor([0]), torch.tensor([0]), features)
    model = MMDFM(MMDFMConfig(embedding_dim=2, item_interactions=True), inputs).eval()
    with torch.no_grad():
        model.user_fields.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.item_id.weight.copy_(torch.tensor([[0.0, 1.0]]))
    model.feature_extraction = Constant(torch.tensor([[[1.0, 0.0], [2.0, 1.0]]]))
    assert model.score(torch.tensor([0])).item() == pytest.approx(10.0)
    assert model.item_bias_column(model.item_fields()).item() == pytest.approx(3.0)


def direct_fm(model: MMDFM, users: Tensor, item_interactions: bool) -> Tensor:
    """Rendle's FM written out: first-order item terms plus <v_f, v_g> over every pair of fields (only the pairs
    with the user field when ``item_interactions`` is off)."""
    fields = model.item_fields().detach()  # (I, S, k)
    first_order = model.warm * model.item_bias.weight + model.content_first_order(model.content)  # (I, 1)
    scores = torch.zeros(len(users), model.num_items)
    for row, user in enumerate(users):
        for item in range(model.num_items):
            user_field = model.user_fields.weight[user]
            pairs = [(user_field, field) for field in fields[item]]
            if item_interactions:
                pairs += list(itertools.combinations(fields[item], 2))
            scores[row, item] = first_order[item, 0] + sum(a @ b for a, b in pairs)
    return scores


@pytest.mark.parametrize("item_interactions", [True, False])
def test_factorised_score_equals_the_fm_formula_on_random_inputs(item_interactions: bool) -> None:
    model = randomise(mmdfm(feature_hidden_dim=8, item_interactions=item_interactions))
    users = torch.tensor([0, 5, 11])
    with torch.no_grad():
        assert torch.allclose(model.score(users), direct_fm(model, users, item_interactions), atol=1e-4)


@pytest.mark.parametrize("fusion", ["late", "hybrid", "attention"])
def test_weighted_modes_score_as_documented(fusion: str) -> None:
    """bias + [early block] + S * sum_f w_uf <v_u^(f), v_f(i)>, with w from modality_weights."""
    model = randomise(mmdfm(fusion=fusion, combine="concat"))
    users = torch.tensor([1, 2])
    with torch.no_grad():
        fields = model.item_fields()  # (I, S, k)
        bias = model.item_bias_column(fields)[:, 0]
        weights = model.modality_weights(users)  # (B, I, S)
        blocks = model.user_fields(users).view(len(users), model.num_blocks, -1)
        late_blocks = blocks[:, -3:]  # the per-field blocks come last
        direct = bias + 3 * (weights * torch.einsum("bsk,isk->bis", late_blocks, fields)).sum(-1)
        if fusion == "hybrid":
            direct = direct + blocks[:, 0] @ model.fusion.early.fuse(fields).T  # type: ignore[union-attr, operator]
        assert torch.allclose(model.score(users), direct, atol=1e-4)


# -- fusion modes, configuration and errors --------------------------------------------------------------

@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_mmdfm_learns_in_every_fusion_mode(fusion: str) -> None:
    split, features = block_split()
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    seed_everything(0)
    model = MMDFM(MMDFMConfig(fusion=fusion, reg_weight=1e-5), inputs)
    trainer = fit(model, split, epochs=40)
    assert trainer.progress.history[-1]["loss"] < trainer.progress.history[0]["loss"] / 2
    train = split.matrix("train")
    evaluator = FullRankingEvaluator(train, sp.csr_matrix(train.shape, dtype=np.float32), ks=(BLOCK,))
    assert evaluator.evaluate(model.eval().score).mean()[f"recall@{BLOCK}"] == 1.0


def test_unknown_fusion_mode_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="model.fusion.*expected one of early, late, hybrid, attention; got 'mid'"):
        build(MMDFMConfig, {"fusion": "mid"}, section="model")
    with pytest.raises(ConfigError, match="model.attention.*user, user_item"):
        MMALConfig(attention="item")


@pytest.mark.parametrize("model_class, config", [(MMDFM, MMDFMConfig()), (MMAL, MMALConfig())])
def test_missing_content_names_the_model(model_class: type, config: object) -> None:
    with pytest.raises(ConfigError, match=f"{model_class.name} reads item content, but the dataset has no feature"):
        model_class(config, inputs_with_cold_item(features={}))
    wanted = dataclasses.replace(config, modalities=("audio",))  # type: ignore[type-var]
    with pytest.raises(ConfigError, match=f"{model_class.name} was asked for modality 'audio'.*only: image, text"):
        model_class(wanted, inputs_with_cold_item())


# -- re-ranking with the deep part ---------------------------------------------------------------------

def test_rerank_changes_scores_only_when_enabled() -> None:
    plain, deep = mmdfm(), mmdfm(rerank_with_deep=True)
    deep.load_state_dict(plain.state_dict(), strict=False)  # the same FM parameters, plus the deep MLP
    users, candidates = torch.tensor([0, 4]), torch.tensor([[3, 1, 7], [0, 19, 2]])
    with torch.no_grad():
        plain_scores = plain.score(users)
        assert torch.allclose(plain.rerank(users, candidates), torch.gather(plain_scores, 1, candidates), atol=1e-6)
        fm_part = deep.factorized_embeddings()
        assert torch.allclose(fm_part.users[users] @ fm_part.items.T, plain_scores)
        deep_scores = deep.score(users)
        assert not torch.allclose(deep_scores, plain_scores)
        assert torch.allclose(deep.rerank(users, candidates), torch.gather(deep_scores, 1, candidates), atol=1e-6)
        assert torch.allclose(deep.score(users, torch.tensor([2, 7])), deep_scores[:, [2, 7]])
    with pytest.raises(NotSupported, match="factorized_embeddings"):
        deep.embeddings()


def test_deep_part_is_trained() -> None:
    model = mmdfm(rerank_with_deep=True).train()
    split, _ = block_split()
    fit(model, split, epochs=1)
    assert model.deep is not None and all(p.grad is not None for p in model.deep.parameters())


# -- explanations and cold items -----------------------------------------------------------------------

def test_mmal_modality_weights_explain_each_user() -> None:
    seed_everything(0)
    model = randomise(MMAL(MMALConfig(), inputs_with_cold_item())).eval()
    assert model.modality_names == ["id", "image", "text"]
    weights = model.modality_weights(torch.tensor([0, 1, 2]), torch.tensor([4, 5]))
    assert weights.shape == (3, 2, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2))
    assert not torch.allclose(weights[0], weights[1], atol=1e-3)


def test_mmal_user_item_attention_is_scored_directly() -> None:
    seed_everything(0)
    model = randomise(MMAL(MMALConfig(attention="user_item", item_bias=False), inputs_with_cold_item())).eval()
    users = torch.tensor([0, 3])
    with torch.no_grad():
        weights = model.modality_weights(users)  # (B, I, S), now different per item
        sources = model.item_sources()
        user = model.user_embedding(users)
        direct = 3 * (weights * torch.einsum("bd,isd->bis", user, sources)).sum(-1)
        assert torch.allclose(model.score(users), direct, atol=1e-5)
    assert not torch.allclose(weights[:, 0], weights[:, 1], atol=1e-3)
    with pytest.raises(NotSupported):
        model.embeddings()


def test_mmal_user_item_attention_learns() -> None:
    split, features = block_split()
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    seed_everything(0)
    model = MMAL(MMALConfig(attention="user_item", reg_weight=1e-5), inputs)
    trainer = fit(model, split, epochs=40)
    assert trainer.progress.history[-1]["loss"] < trainer.progress.history[0]["loss"] / 2


def test_mmdfm_modality_weights_only_where_the_mode_has_them() -> None:
    with pytest.raises(NotSupported, match="fusion='early' has no modality weights"):
        mmdfm().modality_weights(torch.tensor([0]))
    weights = randomise(mmdfm(fusion="attention")).modality_weights(torch.tensor([0, 1]))
    assert weights.shape == (2, 20, 3) and torch.allclose(weights.sum(-1), torch.ones(2, 20))
    assert not torch.allclose(weights[0], weights[1], atol=1e-3)


@pytest.mark.parametrize("build_model", [
    lambda: mmdfm(fusion="hybrid", rerank_with_deep=True),
    lambda: MMAL(MMALConfig(attention="user_item"), inputs_with_cold_item()).eval(),
    lambda: MMAL(MMALConfig(), inputs_with_cold_item()).eval(),
])
def test_cold_items_are_scored_from_content_alone(build_model: object) -> None:
    model = randomise(build_model())  # type: ignore[operator]
    users = torch.arange(6)
    before = model.score(users)
    with torch.no_grad():
        model.item_id.weight[COLD_ITEM].add_(5.0)
        model.item_id.weight[0].add_(5.0)  # a warm item, for contrast
    after = model.eval().score(users)  # eval() again drops cached embeddings
    assert torch.allclose(before[:, COLD_ITEM], after[:, COLD_ITEM])
    assert not torch.allclose(before[:, 0], after[:, 0])


@pytest.mark.parametrize("model_class, config_class", [(MMDFM, MMDFMConfig), (MMAL, MMALConfig)])
def test_content_dropout_acts_only_while_training(model_class: type, config_class: type) -> None:
    seed_everything(0)
    plain = randomise(model_class(config_class(), inputs_with_cold_item()))
    dropped = model_class(config_class(content_dropout=0.5), inputs_with_cold_item())
    dropped.load_state_dict(plain.state_dict())
    users = torch.arange(6)
    with torch.no_grad():
        assert torch.allclose(dropped.eval().score(users), plain.eval().score(users))
        dropped.train()
        first, second = dropped.score(users), dropped.score(users)
    assert not torch.allclose(first, second)  # a fresh dropout mask on each call
    with pytest.raises(ConfigError, match="content_dropout"):
        config_class(content_dropout=1.0)


def penalty_of(model: nn.Module, batch: object) -> float:
    """The loss minus its ranking term: reg_weight times the L2 penalty (reg_weight is 1 below)."""
    with torch.no_grad():
        scores = model.score(batch.users)  # type: ignore[attr-defined, operator]
        ranking = bpr_loss(scores.gather(1, batch.positive_items[:, None]),  # type: ignore[attr-defined]
                           scores.gather(1, batch.negative_items[:, None]))  # type: ignore[attr-defined]
        return (model.loss(batch) - ranking).item()  # type: ignore[operator]


@pytest.mark.parametrize("weighted", [True, False])
def test_mmdfm_penalty_sees_the_fusion_weights_only_when_asked(weighted: bool) -> None:
    """Late weights w = (1/2, 1/4, 1/4) scale the user blocks by S w = (1.5, 0.75, 0.75) in the penalty."""
    model = randomise(mmdfm(fusion="late", reg_weight=1.0, reg_weighted_user=weighted)).train()
    with torch.no_grad():
        model.fusion.logits.copy_(torch.tensor([2.0, 1.0, 1.0]).log())  # type: ignore[union-attr, operator]
    batch = TrainBatch(torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([5, 6]))
    blocks = model.user_fields(batch.users).detach().view(2, 3, -1)
    scale = torch.tensor([1.5, 0.75, 0.75]) if weighted else torch.ones(3)
    fields = model.item_fields().detach()
    items = torch.cat([batch.positive_items, batch.negative_items])
    expected = ((scale[None, :, None] * blocks).pow(2).sum() + fields[items].pow(2).sum()
                + model.item_bias.weight[items].pow(2).sum()) / 4
    assert penalty_of(model, batch) == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("attended", [True, False])
def test_mmal_penalty_is_on_the_attended_item_vector_when_asked(attended: bool) -> None:
    seed_everything(0)
    model = randomise(MMAL(MMALConfig(reg_weight=1.0, reg_attended=attended), inputs_with_cold_item())).train()
    batch = TrainBatch(torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([5, 6]))
    with torch.no_grad():
        user = model.user_embedding(batch.users)
        weights = 3 * model.modality_weights(batch.users)[:, 0]  # (B, S), the same for every item
        items = torch.stack([batch.positive_items, batch.negative_items], 1)  # (B, 2)
        sources = model.item_sources()[items]  # (B, 2, S, d)
        item_part = (weights[:, None, :, None] * sources).sum(2) if attended else sources
        biases = model.catalogue_biases()[items]  # (B, 2): b_i + beta.f_i, penalised too
        expected = (user.pow(2).sum() + item_part.pow(2).sum() + biases.pow(2).sum()) / 4
    assert penalty_of(model, batch) == pytest.approx(expected.item(), rel=1e-4)


def test_mmal_item_bias_adds_an_id_and_a_content_bias_to_every_score() -> None:
    seed_everything(0)
    model = randomise(MMAL(MMALConfig(item_bias=True), inputs_with_cold_item())).eval()
    assert model.id_bias is not None and model.content_bias is not None
    vectors = model.embeddings()
    with torch.no_grad():
        content_bias = model.content_bias(model.content).squeeze(1)
        by_hand = model.id_bias.weight.squeeze(1) + content_bias
        by_hand[COLD_ITEM] = content_bias[COLD_ITEM]  # a cold item has no b_i
        attended = model.attention.item_vectors(model.item_sources())
    assert torch.equal(vectors.users[:, -1], torch.ones(len(vectors.users)))
    assert torch.allclose(vectors.items[:, -1], by_hand, atol=1e-6)
    assert torch.allclose(vectors.items[:, :-1], attended)
    users = torch.arange(6)
    assert torch.allclose(model.score(users), vectors.users[users] @ vectors.items.T, atol=1e-5)


def test_mmal_item_bias_reaches_new_items_and_the_loss() -> None:
    seed_everything(0)
    model = randomise(MMAL(MMALConfig(item_bias=True), inputs_with_cold_item())).eval()
    split, features = block_split()
    new = model.content_item_vectors({m: t[COLD_ITEM : COLD_ITEM + 1] for m, t in features.items()})
    assert torch.allclose(new, model.embeddings().items[COLD_ITEM : COLD_ITEM + 1], atol=1e-6)
    batch = TrainBatch(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3]))
    model.train().loss(batch).backward()
    assert model.id_bias is not None and model.id_bias.weight.grad is not None
    assert bool((model.id_bias.weight.grad[[0, 1, 2, 3]] != 0).all())
