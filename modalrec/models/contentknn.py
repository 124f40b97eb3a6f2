"""Content-kNN: the content-based baseline of cold-start studies (e.g. ColdRec's KNN), in closed form: a user's
profile is the mean of the content of the items they interacted with, and items are ranked by cosine
similarity to it. It needs no interaction for an item, so warm, cold and new items are scored alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content
from modalrec.models.registry import register_model


@dataclass(frozen=True)
class ContentKNNConfig:
    modalities: tuple[str, ...] = ()  # () means every modality; each is weighted equally
    standardize: bool = True  # centre each modality before the cosine (raw CNN features are all positive)


@register_model(
    "contentknn",
    config=ContentKNNConfig,
    description="Content-kNN: cosine between an item's content and the user's mean history content; no training",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True, closed_form=True),
)
class ContentKNN(Recommender):
    r"""Cosine similarity between each item's content and the user's content profile.

    Each modality :math:`m` is standardised and L2-normalised, and the modalities are concatenated with
    weight :math:`1/\sqrt M`, so :math:`\hat{\mathbf x}_i^\top\hat{\mathbf x}_j` is the mean of the
    per-modality cosines. Then

    .. math::
        \mathbf p_u = \frac{1}{|N_u|}\sum_{j \in N_u} \hat{\mathbf x}_j, \qquad
        \hat y_{ui} = \mathbf p_u^\top \hat{\mathbf x}_i
        = \frac{1}{|N_u|}\sum_{j\in N_u} \mathrm{sim}(i, j),

    the mean similarity of item :math:`i` to the user's history: an item-kNN over content with every
    history item as a neighbour. Nothing is learned; the Trainer evaluates it once. A user with no history
    scores every item 0.

    Shapes: items (I, F), profiles (U, F).
    """

    items: Tensor
    profiles: Tensor

    def __init__(self, config: ContentKNNConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.scaler, _ = item_content("contentknn", config, inputs)
        raw = {m: inputs.features[m] for m in self.scaler.modalities}
        items = self.normalised(raw)
        history = torch.zeros(inputs.num_users, inputs.num_items)
        history[inputs.train_users.long(), inputs.train_items.long()] = 1.0
        profiles = (history @ items) / history.sum(1, keepdim=True).clamp(min=1)
        self.register_buffer("items", items, persistent=False)
        self.register_buffer("profiles", profiles, persistent=False)

    def normalised(self, raw: dict[str, Tensor]) -> Tensor:
        """Per-modality standardised, L2-normalised rows, concatenated with weight 1/sqrt(M)."""
        parts = []
        for index, modality in enumerate(self.scaler.modalities):
            table = raw[modality].float()
            if self.config.standardize:
                table = table - getattr(self.scaler, f"centre_{index}").to(table.device)
            parts.append(F.normalize(table, dim=1))
        return torch.cat(parts, dim=1) / len(parts) ** 0.5

    def loss(self, batch: TrainBatch) -> Tensor:
        raise ConfigError("model", "contentknn is computed in closed form and has no training loss")

    def compute_embeddings(self) -> Embeddings:
        return Embeddings(self.profiles, self.items)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        missing = [m for m in self.scaler.modalities if m not in features]
        if missing:
            raise ConfigError("features", f"the new items lack the modality '{missing[0]}' contentknn reads")
        return self.normalised({m: features[m].to(self.items.device) for m in self.scaler.modalities})


__all__ = ["ContentKNN", "ContentKNNConfig"]
