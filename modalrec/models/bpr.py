"""BPR-MF. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
https://arxiv.org/abs/1205.2618
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from modalrec.config import check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty


@dataclass(frozen=True)
class BPRConfig:
    embedding_dim: int = 64  # d, the latent factor size
    reg_weight: float = 1e-2  # lambda, L2 on the batch's user and item factors

    def __post_init__(self) -> None:
        check_range("model.embedding_dim", self.embedding_dim, low=1)


@register_model(
    "bpr",
    config=BPRConfig,
    description="BPR-MF: matrix factorisation trained with the BPR loss (IDs only)",
    capabilities=Capabilities(dot_product=True),
)
class BPR(Recommender[BPRConfig]):
    r"""Matrix factorisation with the pairwise BPR objective.

    .. math::
        \hat y_{ui} = \mathbf p_u^\top \mathbf q_i, \qquad
        \mathcal L = -\tfrac1B \sum_{(u,i,j)} \ln\sigma(\hat y_{ui} - \hat y_{uj})
        + \tfrac{\lambda}{2B} \sum (\lVert\mathbf p_u\rVert^2 + \lVert\mathbf q_i\rVert^2 + \lVert\mathbf q_j\rVert^2)

    Args:
        config: :class:`BPRConfig`.
        inputs: sizes (the training graph and features are not used).

    Shapes: user factors (U, d), item factors (I, d).
    """

    def __init__(self, config: BPRConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.user_embedding = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_embedding = nn.Embedding(inputs.num_items, config.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)

    def loss(self, batch: TrainBatch) -> Tensor:
        user = self.user_embedding(batch.users)  # (B, d)
        positive = self.item_embedding(batch.positive_items)
        negative = self.item_embedding(batch.negative_items)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        return ranking + self.config.reg_weight * l2_penalty(user, positive, negative)

    def compute_embeddings(self) -> Embeddings:
        return Embeddings(self.user_embedding.weight, self.item_embedding.weight)

    def extra_repr(self) -> str:
        return f"users={self.num_users}, items={self.num_items}, dim={self.config.embedding_dim}"


__all__ = ["BPR", "BPRConfig"]
