"""LightGCN. He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. https://arxiv.org/abs/2002.02126
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modalrec.config import check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency
from modalrec.nn.sparse import mean_of_layers


@dataclass(frozen=True)
class LightGCNConfig:
    embedding_dim: int = 64  # d
    num_layers: int = 2  # K propagation steps (the paper uses 3; 2 was best on validation here, see docs/benchmarks/notes.md)
    reg_weight: float = 1e-3  # lambda, L2 on the layer-0 embeddings of the batch

    def __post_init__(self) -> None:
        check_range("model.num_layers", self.num_layers, low=1)
        check_range("model.embedding_dim", self.embedding_dim, low=1)


@register_model(
    "lightgcn", config=LightGCNConfig, description="LightGCN: linear propagation on the user-item graph (IDs only)",
    training_defaults={"learning_rate": 0.01, "lr_schedule": "plateau"},
    capabilities=Capabilities(dot_product=True),
)
class LightGCN(Recommender[LightGCNConfig]):
    r"""Embeddings smoothed over the normalised user-item graph, layers averaged.

    .. math::
        \mathbf E^{(k+1)} = D^{-1/2} A D^{-1/2} \mathbf E^{(k)}, \qquad
        \mathbf E = \tfrac{1}{K+1}\sum_{k=0}^{K} \mathbf E^{(k)}, \qquad
        \hat y_{ui} = \mathbf e_u^\top \mathbf e_i

    trained with BPR plus :math:`\tfrac{\lambda}{2B}\lVert\mathbf E^{(0)}_{batch}\rVert^2`.

    Training defaults: learning rate 0.01, cut on validation plateaus (``train.lr_schedule=plateau``). At the
    Trainer's constant 0.001 the ranking sits near popularity for the first epochs and then climbs slowly,
    so early stopping sometimes ends a run on a mid-way plateau; the larger step gets past it in a few
    epochs and the cuts recover the final quality. Chosen on validation over re-splits and seeds
    (docs/benchmarks/notes.md).

    Args:
        config: :class:`LightGCNConfig`.
        inputs: sizes and the training interactions (the graph, normalised once).

    Shapes: adjacency (U+I, U+I) sparse CSR; embeddings (U+I, d).
    """

    adjacency: Tensor

    def __init__(self, config: LightGCNConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.embedding = nn.Embedding(inputs.num_users + inputs.num_items, config.embedding_dim)
        adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.embedding.weight)

    def propagate_layers(self) -> Tensor:
        """The layer mean over the graph. Shapes: (U+I, d)."""
        return mean_of_layers(self.adjacency, self.embedding.weight, self.config.num_layers)

    def compute_embeddings(self) -> Embeddings:
        users, items = torch.split(self.propagate_layers(), [self.num_users, self.num_items])
        return Embeddings(users, items)

    def loss(self, batch: TrainBatch) -> Tensor:
        # one gather for users, positives and negatives: one scatter in the backward pass instead of three
        nodes = torch.cat([batch.users, self.num_users + batch.positive_items, self.num_users + batch.negative_items])
        user, positive, negative = self.propagate_layers().index_select(0, nodes).chunk(3)
        reg = l2_penalty(*self.embedding.weight.index_select(0, nodes).chunk(3))
        return bpr_loss((user * positive).sum(1), (user * negative).sum(1)) + self.config.reg_weight * reg
