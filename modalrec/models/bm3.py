"""BM3. Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation", WWW 2023.
https://arxiv.org/abs/2207.05969
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import l2_penalty, normalized_adjacency
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.contrastive import bootstrap_loss
from modalrec.nn.sparse import mean_of_layers


@dataclass(frozen=True)
class BM3Config:
    embedding_dim: int = 64  # d, for ID embeddings and projected modality features
    num_layers: int = 1  # L, LightGCN layers (MMRec's grid: 1, 2)
    dropout: float = 0.5  # p, dropout that makes the target view
    cl_weight: float = 0.25  # lambda_cl, weight of the alignment and masked-feature losses (MMRec fixes 2.0)
    # lambda, L2 on the batch's online user and item embeddings. Off by default: a strong penalty collapses the
    # embeddings, and MMRec's version of the term (norm of whole tables / num_items) is nearly zero.
    reg_weight: float = 0.0
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality to zero mean, unit average norm before projecting
    train_features: bool = False  # also learn the feature tables (as BM3's code does), not only projections
    search_space = {  # noqa: RUF012  (the paper's grid, plus cl_weight, which mattered most in our tuning)
        "num_layers": ("int", 1, 2), "dropout": ("choice", 0.3, 0.5), "cl_weight": ("choice", 0.25, 0.5, 2.0),
    }

    def __post_init__(self) -> None:
        check_range("model.embedding_dim", self.embedding_dim, low=1)
        check_range("model.num_layers", self.num_layers, low=0)
        check_range("model.dropout", self.dropout, low=0, high=1, high_open=True)


@register_model(
    "bm3",
    config=BM3Config,
    description="BM3: self-supervised bootstrapping of LightGCN and modality embeddings, no negative sampling",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True, search_space=True),
)
class BM3(Recommender[BM3Config]):
    r"""Bootstrapped latent representations: no negatives, a dropout target view and a predictor.

    Online embeddings come from LightGCN on the ID embeddings, the item's own ID embedding added back, and
    from a linear projection of each modality :math:`m`:

    .. math::
        \mathbf h_u,\ \mathbf h_i = \mathrm{LightGCN}_L(\mathbf E)_{u,i} \ (+\,\mathbf e_i), \qquad
        \mathbf h_i^m = \mathbf W_m \mathbf x_i^m + \mathbf b_m

    The target view is a dropout copy with stop-gradient, :math:`\tilde{\mathbf h} = \mathrm{sg}(\mathrm{
    Dropout}_p(\mathbf h))`, and a linear predictor gives :math:`\dot{\mathbf h} = f_p(\mathbf h)`. With
    :math:`C(\mathbf a, \mathbf b) = 1 - \cos(\mathbf a, \mathbf b)`, averaged over the batch's (u, i) pairs:

    .. math::
        \mathcal L_{rec} = C(\dot{\mathbf h}_u, \tilde{\mathbf h}_i) + C(\dot{\mathbf h}_i, \tilde{\mathbf h}_u),
        \quad
        \mathcal L_{align} = \sum_m C(\dot{\mathbf h}_i^m, \tilde{\mathbf h}_i), \quad
        \mathcal L_{mask} = \sum_m C(\dot{\mathbf h}_i^m, \tilde{\mathbf h}_i^m)

    .. math::
        \mathcal L = \mathcal L_{rec} + \lambda_{cl}(\mathcal L_{align} + \mathcal L_{mask})
        + \tfrac{\lambda}{2B}\lVert[\mathbf h_u, \mathbf h_i]\rVert^2, \qquad
        \hat y_{ui} = \dot{\mathbf h}_u^\top \dot{\mathbf h}_i

    :math:`C` is the paper's negative cosine plus 1, so the loss is non-negative; the gradients are the
    same. The loss reads only (user, positive item) pairs: the negatives the Trainer samples are ignored.

    Differences from MMRec's code: the feature tables are constants (MMRec also trains the raw tables, most
    of its parameters and time), and the L2 term is the squared norm of the batch's rows, not the norm of
    the whole tables.

    Cold items (no training interaction) have their ID embedding fixed at zero, so their online embedding is
    zero. They are scored from content instead: :math:`\mathcal L_{align}` trains :math:`f_p(\mathbf h_i^m)`
    to point like :math:`\mathbf h_i`, so a cold item's :math:`\mathbf h_i` is the mean over modalities of
    :math:`f_p(\mathbf h_i^m)`, rescaled to the mean norm of the warm items' :math:`\mathbf h_i`.

    Args:
        config: :class:`BM3Config`.
        inputs: sizes, the training interactions and ``features`` (at least one modality).

    Shapes: adjacency (U+I, U+I) sparse; content (I, F) with F the summed modality dims; embeddings (U|I, d).
    """

    adjacency: Tensor
    content: Tensor
    warm: Tensor

    def __init__(self, config: BM3Config, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("bm3", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.modality_dims = [table.shape[1] for table in raw.values()]
        self.scaler = ContentScaler(raw, scale=config.standardize)
        self.register_buffer("content", self.scaler(raw), persistent=False)  # (I, F)
        # learned change to the feature tables; rows of cold items never get a gradient and stay zero
        self.content_shift = nn.Parameter(torch.zeros_like(self.content)) if config.train_features else None
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.user_id = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_id = nn.Embedding(inputs.num_items, config.embedding_dim)
        self.projections = nn.ModuleList(nn.Linear(dim, config.embedding_dim) for dim in self.modality_dims)
        self.predictor = nn.Linear(config.embedding_dim, config.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_id.weight)
        nn.init.xavier_uniform_(self.item_id.weight)
        for layer in [*self.projections, self.predictor]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def online_embeddings(self) -> tuple[Tensor, Tensor]:
        """(h_u for every user (U, d), h_i for every item (I, d)); cold items are zero."""
        item_id = self.warm * self.item_id.weight
        nodes = mean_of_layers(self.adjacency, torch.cat([self.user_id.weight, item_id]), self.config.num_layers)
        users, items = torch.split(nodes, [self.num_users, self.num_items])
        return users, items + item_id

    def modality_embeddings(self, content: Tensor) -> list[Tensor]:
        """h_i^m for each modality. Shapes: (N, F) scaled content -> M tensors (N, d)."""
        parts = torch.split(content, self.modality_dims, dim=1)
        return [projection(part) for projection, part in zip(self.projections, parts, strict=True)]

    def latent_from_content(self, content: Tensor, warm_items: Tensor) -> Tensor:
        """h_i estimated from content: the direction of mean_m f_p(h_i^m), the warm items' mean norm.

        Shapes: content (N, F), warm_items (W, d) -> (N, d).
        """
        direction = torch.stack([self.predictor(h) for h in self.modality_embeddings(content)]).mean(0)
        return F.normalize(direction, dim=1) * warm_items.norm(dim=1).mean()

    def item_content(self) -> Tensor:
        """The catalogue's scaled features, with their learned change when ``train_features``. Shape: (I, F)."""
        return self.content if self.content_shift is None else self.content + self.content_shift

    def target_view(self, online: Tensor) -> Tensor:
        """The stop-gradient dropout copy of ``online``; it never carries a gradient."""
        with torch.no_grad():
            return F.dropout(online.detach(), self.config.dropout, training=True)

    def loss(self, batch: TrainBatch) -> Tensor:
        users, items = self.online_embeddings()
        user, item = users.index_select(0, batch.users), items.index_select(0, batch.positive_items)  # (B, d) each
        user_target, item_target = self.target_view(user), self.target_view(item)
        reconstruction = bootstrap_loss(self.predictor(user), item_target) + bootstrap_loss(
            self.predictor(item), user_target
        )
        modality = user.new_zeros(())
        for features in self.modality_embeddings(self.item_content().index_select(0, batch.positive_items)):
            predicted = self.predictor(features)
            modality = modality + bootstrap_loss(predicted, item_target)  # inter-modality alignment
            modality = modality + bootstrap_loss(predicted, self.target_view(features))  # masked features
        regularization = self.config.reg_weight * l2_penalty(user, item)
        return reconstruction + self.config.cl_weight * modality + regularization

    def compute_embeddings(self) -> Embeddings:
        users, items = self.online_embeddings()
        warm = self.warm.bool().squeeze(1)  # (I,)
        cold = torch.nonzero(~warm).squeeze(1)
        if len(cold):  # only the cold rows' content is projected: the warm rows keep their online embedding
            from_content = self.latent_from_content(self.content.index_select(0, cold), items[warm])
            items = items.index_copy(0, cold, from_content)
        return Embeddings(self.predictor(users), self.predictor(items))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features, exactly as cold catalogue items are embedded.

        Shapes: {modality: (N, F_m)} -> (N, d), comparable with ``compute_embeddings().items``.
        """
        content = self.scaler({m: features[m].to(self.content.device) for m in self.modalities})
        _, items = self.online_embeddings()
        return self.predictor(self.latent_from_content(content, items[self.warm.bool().squeeze(1)]))
