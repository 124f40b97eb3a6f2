"""What the cold-start models share: their warm backbone (trained here or taken from a finished run) and
their item content, scaled once so new items are embedded exactly as the catalogue was."""

from __future__ import annotations

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


COLDREC_TRAINING: dict[str, Any] = {"batch_size": 4096, "patience": 10}


def coldrec_training(config: Any) -> dict[str, Any]:
    """ColdRec's training scheme, 4,096 triples a step and early stopping after 10 evaluations without
    improvement, for a model that refines a finished backbone run (as every ColdRec model refines a pretrained
    one); the Trainer's defaults when the model trains its backbone itself, which needs BPR's own budget. A
    refiner starts from converged vectors, so its validation curves flatten within a few epochs."""
    return dict(COLDREC_TRAINING) if config.backbone_run else {}


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


__all__ = ["COLDREC_TRAINING", "coldrec_training", "item_content", "scale_new_content", "warm_backbone"]
