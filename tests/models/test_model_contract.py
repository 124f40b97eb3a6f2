"""The contract every registered model must keep (in the spirit of implicit's shared test mixin)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from modalrec.config import EvalConfig, TrainConfig
from modalrec.data.split import Pairs, Split
from modalrec.evaluate.evaluator import FullRankingEvaluator
from modalrec.models.scoring import DotProductScores
from modalrec.models import ModelInputs, Recommender, available_models, capabilities_of
from modalrec.models.base import NotSupported, TrainBatch
from modalrec.models.io import load_model, save_model
from modalrec.train.run import seed_everything
from modalrec.train.trainer import Trainer

MODEL_NAMES = [entry.name for entry in available_models()]
# settings under which a model declares other capabilities than with its defaults
CAPABILITY_VARIANTS: dict[str, list[dict[str, object]]] = {
    "mmal": [{"attention": "user_item"}],
    "mmdfm": [{"rerank_with_deep": True}, {"fusion": "late"}],
}
CAPABILITY_CASES = [
    pytest.param(name, overrides, id=name + "".join(f"-{k}={v}" for k, v in overrides.items()))
    for name in MODEL_NAMES
    for overrides in [{}, *CAPABILITY_VARIANTS.get(name, [])]
]
# BM3's loss compares two dropout-perturbed views of each node, so it has a floor above zero: it must fall
# by 45% rather than by half (its recall on the training data must still be exactly 1).
LOSS_RATIO = {"bm3": 0.55}
# GAR's generator and recommender are adversaries: at their equilibrium both adversarial BPR terms are ln 2,
# so its summed loss has a floor near 1.3 and falls by 30% at most on this data (recall must still be 1).
LOSS_RATIO["gar"] = 0.7
# ContentMF's softmax starts near ln 20 (all items alike) and cannot go below ln 5 (each user's 5 items share the
# probability mass), a ratio of 0.54: it must cover most of that way
LOSS_RATIO["contentmf"] = 0.7
# popularity is not personalised: the 4 blocks are equally popular, so every user gets the first block (1 in 4)
TRAIN_RECALL = {"popularity": 0.25}
# content-kNN reads content alone, and the text table is noise: 1 target in 20 falls out of its user's top 5
TRAIN_RECALL["contentknn"] = 0.95
GROUPS, BLOCK = 4, 5  # 4 taste groups of 5 items; each user has interacted with every item of its block


def block_split(users_per_group: int = 6) -> tuple[Split, dict[str, torch.Tensor]]:
    num_users, num_items = GROUPS * users_per_group, GROUPS * BLOCK
    users = np.repeat(np.arange(num_users), BLOCK)
    items = np.concatenate([np.arange(BLOCK) + (u % GROUPS) * BLOCK for u in range(num_users)])
    empty = Pairs(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    split = Split(num_users, num_items, train=Pairs(users, items), valid=Pairs(users[::BLOCK], items[::BLOCK]),
                  test=empty)
    rng = np.random.default_rng(0)
    block_onehot = np.eye(GROUPS, dtype=np.float32)[np.arange(num_items) // BLOCK]
    features = {
        "image": torch.from_numpy(np.hstack([block_onehot, rng.normal(size=(num_items, 3)).astype(np.float32)])),
        "text": torch.from_numpy(rng.normal(size=(num_items, 6)).astype(np.float32)),
    }
    return split, features


def build(name: str, seed: int = 0, split: Split | None = None, **overrides: object) -> tuple[Recommender, Split]:
    from modalrec.models.registry import get_model

    full, features = block_split()
    split = full if split is None else split
    entry = get_model(name)
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    config = entry.config_class(**overrides)
    if hasattr(config, "reg_weight"):
        config = dataclasses.replace(config, reg_weight=1e-5)
    seed_everything(seed)
    return entry.model_class(config, inputs), split


def fit(model: Recommender, split: Split, epochs: int, seed: int = 0) -> Trainer:
    config = TrainConfig(epochs=epochs, batch_size=32, learning_rate=0.02, patience=0, progress=False, eval_every=epochs,
                         early_stop_metric=f"recall@{BLOCK}")
    trainer = Trainer(model, split, config, EvalConfig(ks=(BLOCK,)), seed=seed)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_score_shapes(name: str) -> None:
    model, split = build(name)
    model.eval()
    users = torch.tensor([0, 3, 5])
    assert model.score(users).shape == (3, split.num_items)
    assert model.score(users, torch.tensor([1, 2])).shape == (3, 2)
    assert torch.allclose(model.score(users, torch.tensor([1, 2])), model.score(users)[:, [1, 2]])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_two_threads_give_bit_identical_gradients(name: str) -> None:
    """A batch that repeats rows many times, backpropagated twice with two threads. The backward of
    ``table[index]`` adds a repeated row's gradients in a varying order with more than one thread (a
    different last bit from run to run); the models gather with ``index_select``, which adds them in order."""
    model, split = build(name)
    pairs = torch.randint(0, len(split.train.users), (4096,), generator=torch.Generator().manual_seed(0))
    batch = TrainBatch(torch.from_numpy(split.train.users)[pairs], torch.from_numpy(split.train.items)[pairs],
                       torch.randint(0, split.num_items, (4096,), generator=torch.Generator().manual_seed(1)))
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        pytest.skip(f"{name} is solved in closed form: no gradients")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gradients = []
        for _ in range(2):
            model.zero_grad()
            torch.manual_seed(0)  # the same dropout masks and graph samples both times
            model.train().loss(batch).backward()
            gradients.append([p.grad.clone() for p in parameters if p.grad is not None])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*gradients, strict=True))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_scores(name: str) -> None:
    scores = []
    for _ in range(2):
        model, split = build(name, seed=3)
        fit(model, split, epochs=2, seed=3)
        scores.append(model.eval().score(torch.arange(split.num_users)))
    assert torch.equal(scores[0], scores[1])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_learns_tiny_dataset(name: str) -> None:
    model, split = build(name)
    trainer = fit(model, split, epochs=60)
    if any(p.requires_grad for p in model.parameters()):
        losses = [record["loss"] for record in trainer.progress.history]
        assert losses[-1] < losses[0] * LOSS_RATIO.get(name, 0.5)
    else:  # a closed-form model is solved at construction and never trained
        assert trainer.progress.history == []
    train = split.matrix("train")
    nothing = sp.csr_matrix(train.shape, dtype=np.float32)
    recall = FullRankingEvaluator(train, nothing, ks=(BLOCK,)).evaluate(model.eval().score).mean()
    assert recall[f"recall@{BLOCK}"] == pytest.approx(TRAIN_RECALL.get(name, 1.0))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ranking_scorer_ranks_like_score(name: str) -> None:
    """What the trainer evaluates with (the embeddings' product, computed into the evaluator's buffer, for
    the models whose score is that product) gives the tables of ``score`` itself."""
    model, split = build(name)
    fit(model, split, epochs=2)
    model.eval()
    scorer = model.ranking_scorer()
    if not capabilities_of(model).dot_product:
        assert not isinstance(scorer, DotProductScores)
    evaluator = FullRankingEvaluator(split.matrix("valid"), split.matrix("train"), ks=(1, BLOCK))
    expected, got = evaluator.evaluate(model.score), evaluator.evaluate(scorer)
    for metric, values in expected.per_user.items():
        assert np.array_equal(got.per_user[metric], values), metric


@pytest.mark.parametrize(("name", "overrides"), CAPABILITY_CASES)
def test_dot_product_capability_matches_behaviour(name: str, overrides: dict[str, object]) -> None:
    """``dot_product`` <=> the score is the product of ``embeddings()``; without it, embeddings are refused."""
    model, split = build(name, **overrides)
    fit(model, split, epochs=2)
    model.eval()
    if not capabilities_of(model).dot_product:
        with pytest.raises(NotSupported):
            model.embeddings()
        return
    vectors = model.embeddings()
    assert vectors.users.shape[0] == split.num_users and vectors.items.shape[0] == split.num_items
    assert torch.allclose(model.score(torch.arange(split.num_users)), vectors.users @ vectors.items.T, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    model, split = build(name)
    fit(model, split, epochs=3)
    save_model(model, tmp_path / "m.pt")
    _, features = block_split()
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    loaded = load_model(tmp_path / "m.pt", inputs)
    users = torch.arange(split.num_users)
    assert torch.equal(model.eval().score(users), loaded.score(users))
    assert type(loaded) is type(model) and loaded.config == model.config


def cold_item_split() -> Split:
    """The block split with item 0 cold: no training interaction."""
    split, _ = block_split()
    keep = split.train.items != 0
    return Split(split.num_users, split.num_items, Pairs(split.train.users[keep], split.train.items[keep]),
                 split.valid, split.test)


@pytest.mark.parametrize(("name", "overrides"), CAPABILITY_CASES)
def test_new_items_capability_matches_behaviour(name: str, overrides: dict[str, object]) -> None:
    """``new_items`` <=> ``content_item_vectors`` works, and gives a cold catalogue item its catalogue vector."""
    model, split = build(name, split=cold_item_split(), **overrides)
    fit(model, split, epochs=2)
    model.eval()
    _, features = block_split()
    first = {m: t[:1] for m, t in features.items()}
    if not capabilities_of(model).new_items:
        with pytest.raises(NotSupported):
            model.content_item_vectors(first)
        return
    fresh = model.content_item_vectors(first)
    assert torch.allclose(fresh[0], model.embeddings().items[0], atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cold_items_capability_matches_behaviour(name: str) -> None:
    """``cold_items`` => the model reads content, and a cold item's scores follow its content: the same learned
    weights on features where the cold item looks like another block's items score it differently."""
    from modalrec.models.registry import get_model

    entry = get_model(name)
    # content kNN graphs must be sparser than the 20-item catalogue for an item's content to matter
    sparse_graph = {"knn_k": 4} if "knn_k" in {f.name for f in dataclasses.fields(entry.config_class)} else {}
    model, split = build(name, split=cold_item_split(), **sparse_graph)
    if not capabilities_of(model).cold_items:
        return
    assert entry.uses_content
    fit(model, split, epochs=2)
    users = torch.arange(split.num_users)
    before = model.eval().score(users)[:, 0]
    _, features = block_split()
    moved = {m: torch.cat([t[BLOCK * 2: BLOCK * 2 + 1], t[1:]]) for m, t in features.items()}
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), moved)
    other = type(model)(model.config, inputs)
    if not capabilities_of(model).closed_form:  # a closed form is solved from the features: keep that solution
        other.load_state_dict(model.state_dict())
    after = other.eval().score(users)[:, 0]
    assert not torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize(("name", "overrides"), CAPABILITY_CASES)
def test_modality_weights_capability_matches_behaviour(name: str, overrides: dict[str, object]) -> None:
    """``modality_weights`` <=> the model weighs its ``modality_names`` for each user and item, rows summing to 1."""
    model, split = build(name, **overrides)
    model.eval()
    users = torch.tensor([0, 1])
    if not capabilities_of(model).modality_weights:
        with pytest.raises(NotSupported):
            model.modality_weights(users)
        return
    weights = model.modality_weights(users)
    assert weights.shape == (2, split.num_items, len(model.modality_names)) and len(model.modality_names) >= 2
    assert torch.allclose(weights.sum(-1), torch.ones(2, split.num_items), atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_closed_form_and_search_space_capabilities_match_the_model(name: str) -> None:
    """``closed_form`` <=> nothing to train; ``search_space`` <=> the config names a space over its own fields."""
    from modalrec.models.registry import get_model

    entry = get_model(name)
    model, _ = build(name)
    capabilities = capabilities_of(model)
    assert capabilities.closed_form == (not any(p.requires_grad for p in model.parameters()))
    space = entry.search_space()
    assert bool(space) == capabilities.search_space
    assert set(space) <= {f.name for f in dataclasses.fields(entry.config_class)}
