"""ColdBridge, modalrec's own cold-start model: a warm LightGCN backbone, and a bridge from each item's
pretrained content features into the backbone's item space, so that items nobody has interacted with yet are
ranked next to warm ones.

Designed here from the levers the multimodal literature names for sparse data: transfer from pretrained
encoders (the bridge reads their features), and alignment between modalities (each modality is projected into
one shared space and the projections are pulled together). From the cold-start models it takes what each does
well: the content-to-embedding alignment of CLCRec and ALDI, a ranking loss on the mapped content as in GAR,
and, from content-kNN and FREEDOM, the collaborative vectors of an item's warm content neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss
from modalrec.nn.coldstart import MLP, pair_item_scores, warm_neighbour_weights
from modalrec.nn.contrastive import info_nce


@dataclass(frozen=True)
class ColdBridgeConfig:
    embedding_dim: int = 64  # d, the backbone's and the shared content space's size
    num_layers: int = 2  # L, LightGCN layers of the backbone trained here (0: matrix factorisation)
    backbone_run: str = ""  # a finished warm run whose vectors are the frozen backbone
    hidden_dim: int = 256  # hidden width of each modality's projection
    knn_k: int = 10  # k, warm content neighbours whose vectors estimate a cold item's
    neighbour_share: float = 0.5  # beta, the neighbours' share of a cold item's vector (1 - beta: the mapping)
    temperature: float = 0.2  # tau of both alignment losses
    align_weight: float = 0.5  # weight of the content-to-item alignment
    modality_align_weight: float = 0.1  # weight of the alignment between modalities
    rank_weight: float = 1.0  # weight of the BPR loss on the content vectors
    contrast_size: int = 512  # the alignment losses contrast the batch's first n positives with each other
    gate_degree: float = 0.0  # kappa: an item with n interactions keeps n / (n + kappa) of its ID vector (0: all)
    reg_weight: float = 1e-4  # L2 on the backbone's batch rows
    modalities: tuple[str, ...] = ()
    standardize: bool = True

    def __post_init__(self) -> None:
        if min(self.embedding_dim, self.hidden_dim, self.knn_k, self.contrast_size) < 1 or self.num_layers < 0:
            raise ConfigError("model.embedding_dim", "embedding_dim, hidden_dim, knn_k, contrast_size >= 1, num_layers >= 0")
        if not 0.0 <= self.neighbour_share <= 1.0 or self.temperature <= 0 or self.gate_degree < 0:
            raise ConfigError("model.neighbour_share", "neighbour_share in [0, 1], temperature > 0, gate_degree >= 0")


@register_model(
    "coldbridge",
    config=ColdBridgeConfig,
    description="ColdBridge (ours): LightGCN plus aligned per-modality content projections and warm content "
                "neighbours for cold items",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class ColdBridge(Recommender):
    r"""A warm backbone whose item vectors are bridged from content for items without interactions.

    Each modality :math:`m` of item :math:`i` is projected into the shared space,
    :math:`\mathbf p^m_i = P_m(\mathbf x^m_i)`, and fused with learned weights,
    :math:`\mathbf c_i = \sum_m \mathrm{softmax}(\mathbf w)_m \mathbf p^m_i`. With :math:`W` the
    row-normalised cosine weights over the :math:`k` nearest *warm* items by content (never the item
    itself) and :math:`\mathbf V` the backbone's item vectors, an item's content vector and final vector are

    .. math::
        \mathbf z_i = (1-\beta)\,\mathbf c_i + \beta\,(W\mathbf V)_i, \qquad
        \mathbf e_i = g_i \mathbf v_i + (1 - g_i)\,\mathbf z_i, \qquad g_i = \frac{n_i}{n_i + \kappa},

    with :math:`n_i` the item's training interactions (:math:`g_i` is 1 for warm, 0 for cold items when
    :math:`\kappa = 0`); :math:`\hat y_{ui} = \mathbf u^\top\mathbf e_i`. For a batch of triples
    :math:`(u, i, j)`:

    .. math::
        \mathcal L = \mathrm{BPR}_{\mathbf V}
        + \lambda_r\,\mathrm{BPR}(\bar{\mathbf u}^\top\mathbf z_i, \bar{\mathbf u}^\top\mathbf z_j)
        + \lambda_a\,\mathrm{InfoNCE}_\tau(\mathbf c_i, \bar{\mathbf v}_i)
        + \lambda_m \sum_{m > 1} \mathrm{InfoNCE}_\tau(\mathbf p^1_i, \mathbf p^m_i)

    where :math:`\mathrm{BPR}_{\mathbf V}` trains the LightGCN backbone, bars mark vectors read without
    gradient (the content side never moves the warm model), and the InfoNCE losses contrast each positive
    item with the other positives among the batch's first ``contrast_size``. A frozen ``backbone_run``
    replaces the LightGCN backbone.

    Shapes: content (I, F); neighbour weights (I, I) sparse; vectors (U, d), (I, d).
    """

    content: Tensor
    neighbours: Tensor
    gate: Tensor

    def __init__(self, config: ColdBridgeConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("coldbridge", config, inputs, num_layers=config.num_layers)
        self.scaler, content = item_content("coldbridge", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.modality_dims = [int(getattr(self.scaler, f"centre_{m}").shape[1]) for m in range(len(self.scaler.modalities))]
        dim = self.backbone.dim
        self.projections = nn.ModuleList(MLP([size, config.hidden_dim, dim]) for size in self.modality_dims)
        self.modality_logits = nn.Parameter(torch.zeros(len(self.modality_dims)))
        self.register_buffer("neighbours", self.neighbour_weights(content, catalogue=True).to_sparse_csr(),
                             persistent=False)
        degree = torch.bincount(inputs.train_items.long(), minlength=inputs.num_items).float().unsqueeze(1)
        gate = self.backbone.warm if config.gate_degree == 0 else degree / (degree + config.gate_degree)
        self.register_buffer("gate", gate, persistent=False)

    def neighbour_weights(self, query: Tensor, *, catalogue: bool = False, chunk: int = 1024) -> Tensor:
        """W for ``query`` rows of scaled content against the catalogue's warm items (the catalogue itself
        when ``catalogue``: an item is not its own neighbour). Shapes: (N, F) -> (N, I) sparse."""
        warm, k = self.backbone.warm, self.config.knn_k
        rows = [warm_neighbour_weights(query[start:start + chunk], self.content, warm, k,
                                       torch.arange(start, min(start + chunk, len(query))) if catalogue else None)
                for start in range(0, len(query), chunk)]
        return torch.cat(rows).to_sparse() if rows else query.new_zeros(0, self.num_items).to_sparse()

    def projected(self, content: Tensor) -> list[Tensor]:
        """Each modality's projection p^m into the shared space. Shapes: (N, F) -> M x (N, d)."""
        parts = torch.split(content, self.modality_dims, dim=1)
        return [projection(part) for projection, part in zip(self.projections, parts, strict=True)]

    def fused(self, projected: list[Tensor]) -> Tensor:
        weights = torch.softmax(self.modality_logits, dim=0)
        return sum((w * p for w, p in zip(weights, projected, strict=True)), torch.zeros_like(projected[0]))

    def content_vectors(self, content: Tensor, neighbours: Tensor, items: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(z, the modality projections) for rows of content and their neighbour weights against ``items``."""
        projected = self.projected(content)
        beta = self.config.neighbour_share
        return (1 - beta) * self.fused(projected) + beta * torch.sparse.mm(neighbours, items), projected

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        fixed_items = items_all.detach()
        # each distinct item of the batch once (a batch repeats items: ml100k has 1,682 for 4,096 rows)
        both, rows = torch.unique(torch.cat([batch.positive_items, batch.negative_items]), return_inverse=True)
        neighbours = torch.index_select(self.neighbours.to_sparse_coo(), 0, both)
        bridged, projected = self.content_vectors(self.content.index_select(0, both), neighbours, fixed_items)
        positive, negative = bridged.index_select(0, rows).chunk(2)
        user = users_all.index_select(0, batch.users).detach()
        rank = bpr_loss(pair_item_scores(user, positive), pair_item_scores(user, negative))
        count, tau = min(len(batch.users), self.config.contrast_size), self.config.temperature
        targets = torch.arange(count, device=both.device)
        first = [p.index_select(0, rows[:count]) for p in projected]
        anchors = fixed_items.index_select(0, batch.positive_items[:count])
        align = info_nce(self.fused(first), anchors, targets, tau).mean()
        modality = sum((info_nce(first[0], other, targets, tau).mean() for other in first[1:]), rank.new_zeros(()))
        c = self.config
        backbone = self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, c.reg_weight)
        return backbone + c.rank_weight * rank + c.align_weight * align + c.modality_align_weight * modality

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        bridged, _ = self.content_vectors(self.content, self.neighbours.to_sparse_coo(), items)
        return Embeddings(users, self.gate * items + (1 - self.gate) * bridged)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        content = scale_new_content(self.scaler, features, self.content.device)
        _, items = self.backbone.vectors()
        bridged, _ = self.content_vectors(content, self.neighbour_weights(content), items)
        return bridged


__all__ = ["ColdBridge", "ColdBridgeConfig"]
