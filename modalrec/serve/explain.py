"""How much each modality contributed to a user's recommendations.

Models declaring the ``modality_weights`` capability report their weights (``modality_weights(users, items)``
with the names in ``modality_names``). For any other content model the contribution of a modality is the drop in
score when that modality's features are replaced by their mean over items (the model is rebuilt on the
ablated features with the same learned weights). A content kNN graph built from the ablated modality is
the self-loop graph: with every item alike, no item is anyone's content neighbour
(:func:`~modalrec.nn.knn.constant_tables_allowed`); the other modalities' graphs are rebuilt unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from modalrec.errors import ModalrecError
from modalrec.models.base import ModelInputs, Recommender
from modalrec.models.registry import capabilities_of, get_model
from modalrec.nn.knn import constant_tables_allowed
from modalrec.serve.recommend import recommend_for_users
from modalrec.train.run import LoadedRun, model_inputs


@dataclass(frozen=True)
class ItemExplanation:
    rank: int
    item_id: str
    score: float
    contributions: dict[str, float]  # modality -> attention weight or score drop
    method: str  # "attention" or "ablation"


def explain_user(run: LoadedRun, user_id: str, k: int = 10) -> list[ItemExplanation]:
    """The user's top-k items, each with per-modality contributions."""
    entry = get_model(run.config.model_name)
    if not entry.uses_content:
        raise ModalrecError(f"explain: {entry.name} reads no item content; there is no modality to explain")
    _check_trained_user(run, user_id)
    top = recommend_for_users(run, [user_id], k)
    users = torch.from_numpy(run.dataset.user_ids.indices_of([user_id])).to(run.device)
    items = torch.from_numpy(run.dataset.item_ids.indices_of(top["item_id"])).to(run.device)
    if capabilities_of(run.model).modality_weights:  # per configuration: not MMDFM's early fusion
        contributions, method = _attention(run.model, users, items), "attention"
    else:
        contributions, method = _ablation(run, users, items), "ablation"
    return [
        ItemExplanation(int(rank), str(item), float(score), {m: float(v[i]) for m, v in contributions.items()}, method)
        for i, (rank, item, score) in enumerate(zip(top["rank"], top["item_id"], top["score"], strict=True))
    ]


def _check_trained_user(run: LoadedRun, user_id: str) -> None:
    """Refuse a user the model learned nothing about: ``recommend`` gives them the popular items, which no
    modality contributed to."""
    index = run.dataset.user_ids.lookup().get(str(user_id))
    if index is None:
        raise ModalrecError(f"explain: unknown user id '{user_id}' (not in the dataset); only a user with "
                            "training interactions has recommendations to explain")
    if not (run.split.train.users == index).any():
        raise ModalrecError(f"explain: user '{user_id}' has no training interaction; recommend gives them the "
                            "popular items, which no modality contributed to")


@torch.no_grad()
def _attention(model: Recommender, users: Tensor, items: Tensor) -> dict[str, Tensor]:
    weights = model.modality_weights(users, items).reshape(len(items), -1)  # one user: (k, M)
    return {name: weights[:, j].cpu() for j, name in enumerate(model.modality_names)}


@torch.no_grad()
def _ablation(run: LoadedRun, users: Tensor, items: Tensor) -> dict[str, Tensor]:
    inputs = model_inputs(run.dataset, run.split)
    used = run.model.modalities or sorted(inputs.features)
    original = run.model.score(users, items)[0].cpu()
    drops = {}
    for modality in used:
        ablated = _with_mean_features(inputs, modality)
        with constant_tables_allowed():  # graph models rebuild (LENS, FREEDOM) or relearn (LATTICE) kNN graphs
            model = type(run.model)(run.model.config, ablated)
            model.load_state_dict(run.model.state_dict())
            model.to(run.device).eval()
            drops[modality] = original - model.score(users, items)[0].cpu()
    return drops


def _with_mean_features(inputs: ModelInputs, modality: str) -> ModelInputs:
    table = inputs.features[modality]
    features = dict(inputs.features)
    features[modality] = table.mean(0, keepdim=True).expand_as(table).clone()
    return dataclasses.replace(inputs, features=features)
