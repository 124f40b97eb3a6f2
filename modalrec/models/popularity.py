"""Popularity: every user gets the items with the most training interactions. The floor any personalised
model must clear (Cornac's ``MostPop``, RecBole's ``Pop``, MMRec's baselines tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model


@dataclass(frozen=True)
class PopularityConfig:
    """Popularity has nothing to configure."""


@register_model(
    "popularity",
    config=PopularityConfig,
    description="Popularity: the most-interacted items for everyone; the baseline to beat, no training",
    capabilities=Capabilities(dot_product=True, closed_form=True),
)
class Popularity(Recommender):
    r"""Scores an item by its number of distinct training users, the same for every user:

    .. math::
        \hat y_{ui} = |\{v : (v, i) \in \mathcal E_{train}\}|.

    As a dot product: every user vector is :math:`[1]`, every item vector :math:`[\mathrm{count}_i]`.
    Nothing is learned; the Trainer evaluates it once.

    Shapes: counts (I, 1); users (U, 1).
    """

    counts: Tensor

    def __init__(self, config: PopularityConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        pairs = torch.unique(inputs.train_users.long() * inputs.num_items + inputs.train_items.long())
        counts = torch.bincount(pairs % inputs.num_items, minlength=inputs.num_items).float()
        self.register_buffer("counts", counts.unsqueeze(1), persistent=False)

    def loss(self, batch: TrainBatch) -> Tensor:
        raise ConfigError("model", "popularity is counted in closed form and has no training loss")

    def compute_embeddings(self) -> Embeddings:
        return Embeddings(self.counts.new_ones(self.num_users, 1), self.counts)


__all__ = ["Popularity", "PopularityConfig"]
