"""What the cold-start models share: their warm backbone (trained here or taken from a finished run) and
their item content, scaled once so new items are embedded exactly as the catalogue was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from modalrec.errors import ConfigError
from modalrec.models.base import ModelInputs
from modalrec.nn.coldstart import WarmBackbone
from modalrec.nn.content import ContentScaler, content_tables


def warm_backbone(model: str, config: Any, inputs: ModelInputs, *, num_layers: int = 0) -> WarmBackbone:
    """The backbone ``model`` refines: the vectors of the run named by ``config.backbone_run`` (frozen, or
    the starting point of an MF backbone trained further when the config has ``backbone_finetune`` set), or
    ID embeddings of ``config.embedding_dim`` trained here (MF when ``num_layers`` is 0, else LightGCN)."""
    graph = (inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
    if not config.backbone_run:
        return WarmBackbone(*graph, config.embedding_dim, num_layers=num_layers)
    if inputs.backbone is None:
        raise ConfigError("model.backbone_run", f"{model}: the backbone run {config.backbone_run} was not loaded; "
                          "it is read by `modalrec train` (pass its vectors in ModelInputs.backbone)")
    users, items = inputs.backbone.users.detach().float(), inputs.backbone.items.detach().float()
    if not getattr(config, "backbone_finetune", False):
        return WarmBackbone(*graph, config.embedding_dim, frozen=(users, items))
    backbone = WarmBackbone(*graph, users.shape[1])
    backbone.start_from(users, items)
    return backbone


def on_finished_backbone(**settings: Any) -> Callable[[Any], dict[str, Any]]:
    """Training defaults (``training_defaults=`` of ``register_model``) for a model that refines a finished
    backbone run, ``settings`` when ``model.backbone_run`` is set and none otherwise: a model that trains
    its backbone in the same steps needs BPR's own budget. A refiner starts from converged vectors, so its
    validation curves flatten within a few epochs."""

    def defaults(config: Any) -> dict[str, Any]:
        return dict(settings) if config.backbone_run else {}

    return defaults


# ColdRec's training scheme, from its main.py: 4,096 triples a step (--bs), patience 10 (--early_stop)
COLDREC_TRAINING = on_finished_backbone(batch_size=4096, patience=10)
COLDREC_PATIENCE = on_finished_backbone(patience=10)


def item_content(model: str, config: Any, inputs: ModelInputs) -> tuple[ContentScaler, Tensor]:
    """The scaler fitted on the catalogue's chosen modalities and the catalogue's scaled content (I, F)."""
    raw = content_tables(model, config.modalities, inputs.features, scale=False)
    scaler = ContentScaler(raw, scale=config.standardize)
    return scaler, scaler(raw)


def scale_new_content(scaler: ContentScaler, features: dict[str, Tensor], device: torch.device) -> Tensor:
    """New items' raw features scaled with the catalogue's statistics. Shapes: {m: (N, F_m)} -> (N, F)."""
    missing = [m for m in scaler.modalities if m not in features]
    if missing:
        raise ConfigError("features", f"the new items lack the modality '{missing[0]}' the model reads")
    return scaler({m: features[m].to(device) for m in scaler.modalities})


__all__ = ["COLDREC_PATIENCE", "COLDREC_TRAINING", "item_content", "on_finished_backbone", "scale_new_content",
           "warm_backbone"]
