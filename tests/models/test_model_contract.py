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
from modalrec.models import ModelInputs, Recommender, available_models
from modalrec.models.base import TrainBatch
from modalrec.models.io import load_model, save_model
from modalrec.train.run import seed_everything
from modalrec.train.trainer import Trainer

MODEL_NAMES = [entry.name for entry in available_models()]
# BM3's loss compares two dropout-perturbed views of each node, so it has a floor above zero: it must fall
# by 45% rather than by half (its recall on the training data must still be exactly 1).
LOSS_RATIO = {"bm3": 0.55}
# popularity is not personalised: the 4 blocks are equally popular, so every user gets the first block (1 in 4)
TRAIN_RECALL = {"popularity": 0.25}
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


def build(name: str, seed: int = 0) -> tuple[Recommender, Split]:
    from modalrec.models.registry import get_model

    split, features = block_split()
    entry = get_model(name)
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    config = entry.config_class()
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
    assert recall[f"recall@{BLOCK}"] == TRAIN_RECALL.get(name, 1.0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ranking_scorer_ranks_like_score(name: str) -> None:
    """What the trainer evaluates with (the embeddings' product, computed into the evaluator's buffer, for
    the models whose score is that product) gives the tables of ``score`` itself."""
    model, split = build(name)
    fit(model, split, epochs=2)
    model.eval()
    scorer = model.ranking_scorer()
    assert isinstance(scorer, DotProductScores) == (type(model).score is Recommender.score)
    evaluator = FullRankingEvaluator(split.matrix("valid"), split.matrix("train"), ks=(1, BLOCK))
    expected, got = evaluator.evaluate(model.score), evaluator.evaluate(scorer)
    for metric, values in expected.per_user.items():
        assert np.array_equal(got.per_user[metric], values), metric


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_scores_are_embedding_dot_products(name: str) -> None:
    model, split = build(name)
    fit(model, split, epochs=2)
    model.eval()
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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_new_items_from_content_match_cold_catalogue_items(name: str) -> None:
    """Where a model can embed new content, a cold catalogue item's vector equals its content vector."""
    from modalrec.models.base import NotSupported

    split, features = block_split()
    keep = split.train.items != 0  # item 0 becomes cold: no training interaction
    split = Split(split.num_users, split.num_items, Pairs(split.train.users[keep], split.train.items[keep]),
                  split.valid, split.test)
    model, _ = build(name)
    inputs = ModelInputs(split.num_users, split.num_items, torch.from_numpy(split.train.users),
                         torch.from_numpy(split.train.items), features)
    model = type(model)(model.config, inputs)
    fit(model, split, epochs=2)
    model.eval()
    try:
        fresh = model.content_item_vectors({m: t[:1] for m, t in features.items()})
    except NotSupported:
        pytest.skip(f"{name} does not embed new items")
    assert torch.allclose(fresh[0], model.embeddings().items[0], atol=1e-5)
