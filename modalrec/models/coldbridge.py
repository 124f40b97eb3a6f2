"""ColdBridge, modalrec's own cold-start model: a warm LightGCN backbone, and a bridge from each item's
pretrained content features into the backbone's item space, so that items nobody has interacted with yet are
ranked next to warm ones.

Designed here from the levers the multimodal literature names for sparse data: transfer from pretrained
encoders (the bridge reads their features), and alignment between modalities (each modality is projected into
one shared space and the projections are pulled together). It scores a cold item by two content paths: a content-kNN
whose similarity is learned (the user's history, projected and averaged, against the item's projected content;
trained leave-one-out on warm items so it transfers to items it never saw), and the collaborative vectors of
the item's warm content neighbours (as FREEDOM estimates its cold items). The projections are also aligned with
the backbone's item vectors, as CLCRec and ALDI align content with collaborative embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss
from modalrec.nn.coldstart import MLP, pair_item_scores, warm_neighbour_weights
from modalrec.nn.sparse import SparseOperator, user_item_matrix
from modalrec.nn.contrastive import info_nce


@dataclass(frozen=True)
class ColdBridgeConfig:
    embedding_dim: int = 64  # d, the backbone's and the shared content space's size
    num_layers: int = 2  # L, LightGCN layers of the backbone trained here (0: matrix factorisation)
    backbone_run: str = ""  # a finished warm run whose vectors are the frozen backbone
    hidden_dim: int = 128  # hidden width of each modality's projection (0: a linear projection)
    knn_k: int = 10  # k, warm content neighbours whose backbone vectors estimate a cold item's
    neighbour_weight: float = 1.0  # gamma, weight of the neighbours' estimate in a cold item's score
    projection_weight: float = 1.0  # rho, weight of the learned projections' similarity (0: cosines alone)
    temperature: float = 0.2  # tau of both alignment losses
    align_weight: float = 0.1  # weight of the content-to-item alignment
    modality_align_weight: float = 0.1  # weight of the alignment between modalities
    contrast_size: int = 512  # the alignment losses contrast the batch's first n positives with each other
    gate_degree: float = 0.0  # kappa: an item with n interactions keeps n / (n + kappa) of its ID vector (0: all)
    reg_weight: float = 1e-4  # L2 on the backbone's batch rows
    modalities: tuple[str, ...] = ()
    standardize: bool = True

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, knn_k=self.knn_k, contrast_size=self.contrast_size)
        check_at_least("model", 0, num_layers=self.num_layers, hidden_dim=self.hidden_dim,
                       neighbour_weight=self.neighbour_weight, projection_weight=self.projection_weight,
                       gate_degree=self.gate_degree)
        check_range("model.temperature", self.temperature, low=0, low_open=True)


@register_model(
    "coldbridge",
    config=ColdBridgeConfig,
    description="ColdBridge (ours): LightGCN plus a learned content-kNN over aligned modality projections and "
                "warm content neighbours for cold items",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class ColdBridge(Recommender):
    r"""A warm backbone, with cold items scored by a learned content similarity and their warm neighbours.

    Each modality :math:`m` of item :math:`i` is standardised and normalised, :math:`\hat{\mathbf x}^m_i`, and
    projected into a shared space, :math:`\mathbf p^m_i = P_m(\mathbf x^m_i)`; with learned modality weights
    :math:`\mathbf w = \mathrm{softmax}(\boldsymbol\omega)` the item's content vector is

    .. math::
        \mathbf c_i = \big[\sqrt{w_1}\,\hat{\mathbf x}^1_i, \dots, \sqrt{w_M}\,\hat{\mathbf x}^M_i,
        \rho \textstyle\sum_m w_m \mathbf p^m_i\big],

    and a user's content profile the mean over their training items,
    :math:`\mathbf q_u = \frac{1}{|N_u|}\sum_{j \in N_u} \mathbf c_j`, so :math:`\mathbf q_u^\top\mathbf c_i`
    is a content-kNN score: weighted per-modality cosines plus the similarity of the learned projections.
    With :math:`W` the row-normalised cosine weights over the :math:`k` nearest *warm* items by content
    (never the item itself) and :math:`\mathbf V` the backbone's item vectors, an item without
    interactions is scored

    .. math::
        s^c_{ui} = \mathbf q_u^\top \mathbf c_i + \gamma\, \mathbf u^\top (W\mathbf V)_i ,

    a warm item :math:`\mathbf u^\top\mathbf v_i`; with ``gate_degree`` :math:`\kappa > 0` an item with
    :math:`n_i` interactions blends the two, :math:`g_i = n_i / (n_i + \kappa)` of the ID score. All is one dot
    product of :math:`[\mathbf u, \mathbf q_u]` with
    :math:`[g_i\mathbf v_i + (1-g_i)\gamma (W\mathbf V)_i,\ (1-g_i)\mathbf c_i]`. For a batch of triples
    :math:`(u, i, j)`:

    .. math::
        \mathcal L = \mathrm{BPR}_{\mathbf V}
        + \mathrm{BPR}(s^{c,-i}_{ui}, s^{c,-i}_{uj})
        + \lambda_a\,\mathrm{InfoNCE}_\tau(\textstyle\sum_m w_m\mathbf p^m_i, \bar{\mathbf v}_i)
        + \lambda_m \sum_{m > 1} \mathrm{InfoNCE}_\tau(\mathbf p^1_i, \mathbf p^m_i)

    where :math:`\mathrm{BPR}_{\mathbf V}` trains the LightGCN backbone, :math:`s^{c,-i}` uses the profile
    without item :math:`i` (leave-one-out: at inference a cold item is never in the profile), the content
    side reads the backbone without gradient (it never moves the warm model), and the InfoNCE losses contrast
    each positive with the other positives among the batch's first ``contrast_size``. A frozen
    ``backbone_run`` replaces the LightGCN backbone.

    Shapes: content (I, F); neighbour weights (I, I) sparse; vectors (U, 2d + F), (I, 2d + F).
    """

    content: Tensor
    unit_content: Tensor
    neighbours: Tensor
    gate: Tensor
    history_count: Tensor
    unit_profiles: Tensor

    def __init__(self, config: ColdBridgeConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("coldbridge", config, inputs, num_layers=config.num_layers)
        self.scaler, content = item_content("coldbridge", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.modality_dims = [int(getattr(self.scaler, f"centre_{m}").shape[1])
                              for m in range(len(self.scaler.modalities))]
        dim, hidden = self.backbone.dim, config.hidden_dim
        self.projections = nn.ModuleList(MLP([size, hidden, dim] if hidden else [size, dim])
                                         for size in self.modality_dims)
        self.modality_logits = nn.Parameter(torch.zeros(len(self.modality_dims)))  # w = softmax(logits)
        self.register_buffer("unit_content", self.unit_rows(content), persistent=False)
        self.register_buffer("neighbours", self.neighbour_weights(content, catalogue=True).to_sparse_csr(),
                             persistent=False)
        history = user_item_matrix(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items, "none")
        self.history = SparseOperator(history)  # R, binary (U, I)
        counts = torch.bincount(torch.unique(inputs.train_users.long() * inputs.num_items + inputs.train_items.long())
                                // inputs.num_items, minlength=inputs.num_users).float().unsqueeze(1)
        self.register_buffer("history_count", counts, persistent=False)
        self.register_buffer("unit_profiles", self.history(self.unit_content), persistent=False)  # sums, (U, F)
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

    def unit_rows(self, content: Tensor) -> Tensor:
        """Each modality of the scaled content L2-normalised per row. Shapes: (N, F) -> (N, F)."""
        return torch.cat([F.normalize(part, dim=1) for part in torch.split(content, self.modality_dims, dim=1)], 1)

    def weighted_cosines(self, unit: Tensor) -> Tensor:
        """[sqrt(w_m) x_m / |x_m|]_m, whose dot products are the w-weighted sums of per-modality cosines."""
        weights = torch.softmax(self.modality_logits, dim=0).sqrt()
        parts = torch.split(unit, self.modality_dims, dim=1)
        return torch.cat([w * part for w, part in zip(weights, parts, strict=True)], dim=1)

    def item_content(self, content: Tensor, unit: Tensor) -> tuple[Tensor, list[Tensor]]:
        """c_i = [weighted cosine rows, rho x fused projections], and the modality projections."""
        projected = self.projected(content)
        fused = self.config.projection_weight * self.fused(projected)
        return torch.cat([self.weighted_cosines(unit), fused], dim=1), projected

    def projected(self, content: Tensor) -> list[Tensor]:
        """Each modality's projection p^m into the shared space. Shapes: (N, F) -> M x (N, d)."""
        parts = torch.split(content, self.modality_dims, dim=1)
        return [projection(part) for projection, part in zip(self.projections, parts, strict=True)]

    def fused(self, projected: list[Tensor]) -> Tensor:
        weights = torch.softmax(self.modality_logits, dim=0)
        return sum((w * p for w, p in zip(weights, projected, strict=True)), torch.zeros_like(projected[0]))

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        fixed_users, fixed_items = users_all.detach(), items_all.detach()
        projected = self.projected(self.content)  # every item once: M x (I, d)
        fused = self.config.projection_weight * self.fused(projected)
        user = fixed_users.index_select(0, batch.users)
        others = (self.history_count.index_select(0, batch.users) - 1).clamp(min=1)

        def without_positive(totals: Tensor, table: Tensor) -> Tensor:  # leave-one-out profile rows
            return (totals.index_select(0, batch.users) - table.index_select(0, batch.positive_items)) / others

        with torch.no_grad():  # fixed content: the per-modality cosines only get a learned weight
            cosine_profile = without_positive(self.unit_profiles, self.unit_content)
        projected_profile = without_positive(self.history(fused), fused)
        estimates = torch.sparse.mm(self.neighbours.to_sparse_coo(), fixed_items)  # (W V), no gradient
        gamma, weights = self.config.neighbour_weight, torch.softmax(self.modality_logits, dim=0)

        def content_score(items: Tensor) -> Tensor:
            with torch.no_grad():
                products = cosine_profile * self.unit_content.index_select(0, items)
                cosines = torch.stack([part.sum(1) for part in torch.split(products, self.modality_dims, 1)], 1)
            return cosines @ weights + pair_item_scores(projected_profile, fused.index_select(0, items)) + gamma * (
                pair_item_scores(user, estimates.index_select(0, items)))

        rank = bpr_loss(content_score(batch.positive_items), content_score(batch.negative_items))
        count, tau = min(len(batch.users), self.config.contrast_size), self.config.temperature
        targets = torch.arange(count, device=user.device)
        first = [p.index_select(0, batch.positive_items[:count]) for p in projected]
        align = info_nce(self.fused(first), fixed_items.index_select(0, batch.positive_items[:count]),
                         targets, tau).mean()
        modality = sum((info_nce(first[0], other, targets, tau).mean() for other in first[1:]), rank.new_zeros(()))
        c = self.config
        backbone = self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, c.reg_weight)
        return backbone + rank + c.align_weight * align + c.modality_align_weight * modality

    def item_vectors(self, items: Tensor, neighbours: Tensor, fused: Tensor, gate: Tensor) -> Tensor:
        """[g v + (1 - g) gamma (W V), (1 - g) c] for rows with ID vectors ``items`` (0 for new items)."""
        _, catalogue = self.backbone.vectors()
        estimate = self.config.neighbour_weight * torch.sparse.mm(neighbours, catalogue)
        return torch.cat([gate * items + (1 - gate) * estimate, (1 - gate) * fused], dim=1)

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        fused, _ = self.item_content(self.content, self.unit_content)
        projection_profiles = self.history(fused[:, self.unit_content.shape[1]:])
        profiles = torch.cat([self.weighted_cosines(self.unit_profiles), projection_profiles], 1)
        profiles = profiles / self.history_count.clamp(min=1)
        vectors = self.item_vectors(items, self.neighbours.to_sparse_coo(), fused, self.gate)
        return Embeddings(torch.cat([users, profiles], dim=1), vectors)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        content = scale_new_content(self.scaler, features, self.content.device)
        none, (fused, _) = content.new_zeros(len(content), self.backbone.dim), self.item_content(content,
                                                                                             self.unit_rows(content))
        return self.item_vectors(none, self.neighbour_weights(content), fused, content.new_zeros(len(content), 1))


__all__ = ["ColdBridge", "ColdBridgeConfig"]
