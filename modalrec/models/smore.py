"""SMORE. Ong & Khong, "Spectrum-based Modality Representation Fusion Graph Convolutional Network for
Multimodal Recommendation", WSDM 2025. https://arxiv.org/abs/2412.14978
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.contrastive import info_nce
from modalrec.nn.knn import knn_graph
from modalrec.nn.reduce import sum_in_order
from modalrec.nn.sparse import SparseOperator, elementwise_max, mean_of_layers, user_item_matrix
from modalrec.nn.spectral import SpectrumFusion


@dataclass(frozen=True)
class SMOREConfig:
    embedding_dim: int = 64  # d, for ID embeddings and projected modality features
    num_ui_layers: int = 3  # L, LightGCN layers of the behaviour view (n_ui_layers)
    num_item_layers: int = 1  # propagation steps on the item-item graphs (n_layers)
    knn_k: int = 10  # neighbours per item in each modality's item-item graph (image_knn_k, text_knn_k)
    cl_weight: float = 0.01  # lambda_c, weight of the InfoNCE loss between side and behaviour embeddings
    tau: float = 0.2  # temperature of the InfoNCE loss
    dropout: float = 0.0  # dropout on the behaviour-aware preference gates
    reg_weight: float = 1e-5  # lambda, L2 on the batch's final user, positive and negative embeddings
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = False  # scale each modality to zero mean, unit average norm (SMORE's code: raw)
    train_features: bool = True  # also learn the feature tables, as SMORE's code does, not only projections
    contrast_distinct: bool = False  # InfoNCE over the batch's rows, as SMORE's code; True: distinct nodes only
    # `modalrec tune` ranges: MMRec's grid for SMORE (n_ui_layers, knn_k, dropout_rate) plus the shared ones
    search_space = {  # noqa: RUF012
        "num_ui_layers": ("int", 2, 4), "knn_k": ("choice", 10, 15, 20, 40), "dropout": ("choice", 0.0, 0.1)
    }

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, num_item_layers=self.num_item_layers,
                       knn_k=self.knn_k)
        check_range("model.num_ui_layers", self.num_ui_layers, low=0)
        check_range("model.dropout", self.dropout, low=0, high=1, high_open=True)
        check_range("model.tau", self.tau, low=0, low_open=True)


def gate(dim: int) -> nn.Module:
    r""":math:`\sigma(\mathbf W \mathbf x + \mathbf b)`, one gate value per dimension."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())


def attention_query(dim: int) -> nn.Module:
    r""":math:`\mathbf W_2 \tanh(\mathbf W_1 \mathbf x + \mathbf b_1)`, the fusion-guided attention logits."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim, bias=False))


def batch_rows_info_nce(anchors: Tensor, candidates: Tensor, nodes: Tensor, temperature: float) -> Tensor:
    r"""InfoNCE over the batch's rows, each row's node against every row's node, averaged over rows:

    .. math::
        \frac1B \sum_{b} -\log \frac{\exp(s_{n_b n_b}/\tau)}{\sum_{b'} \exp(s_{n_b n_{b'}}/\tau)}

    A node on c rows is c equal rows and c equal candidates, so this is computed on the distinct nodes with
    each candidate's logit raised by log c and each node's loss weighted by c: the same value and gradient
    as the B x B form, at the cost of the distinct nodes only.

    Shapes: anchors, candidates (N, d) tables; nodes (B,) long rows into them -> scalar.
    """
    distinct, counts = torch.unique(nodes, return_counts=True)
    log_counts = counts.float().log()
    logits = F.normalize(anchors[distinct], dim=1) @ F.normalize(candidates[distinct], dim=1).T / temperature
    positives = torch.arange(len(distinct), device=nodes.device)
    per_node = F.cross_entropy(logits + log_counts, positives, reduction="none") + log_counts
    return (counts * per_node).sum() / counts.sum()


@register_model(
    "smore",
    config=SMOREConfig,
    description="SMORE: modality fusion in the frequency domain, item-item kNN graphs and behaviour-aware gates",
    uses_content=True,
    training_defaults={"learning_rate": 0.002, "patience": 30},
    capabilities=Capabilities(dot_product=True, cold_items=True, search_space=True),
)
class SMORE(Recommender[SMOREConfig]):
    r"""Spectrum-based modality fusion, item-item graphs per modality, and behaviour-aware preference gates.

    Spectrum modality fusion: each modality is projected, :math:`\mathbf h_i^m = \mathbf W_m \mathbf x_i^m +
    \mathbf b_m`, denoised by a learned complex filter on its real FFT (along the feature dimension), and all
    spectra are multiplied for the fused view (:class:`modalrec.nn.spectral.SpectrumFusion`):

    .. math::
        \hat{\mathbf h}^m = \mathcal F^{-1}(\mathbf W^m \odot \mathcal F(\mathbf h^m)), \qquad
        \hat{\mathbf h}^f = \mathcal F^{-1}(\mathbf W^f \odot \textstyle\prod_m \mathcal F(\mathbf h^m))

    Graph learning, for each view :math:`v \in \{1..M, f\}`: the ID embedding is gated by the view, then
    propagated on a frozen item-item graph :math:`S^v` and read by users through the normalised interactions
    :math:`\hat R = D_u^{-1/2} R D_i^{-1/2}`; the behaviour view is LightGCN on the IDs:

    .. math::
        \mathbf E_i^v = (S^v)^{L_i} \bigl(\mathbf E_i^{id} \odot \sigma(\hat{\mathbf H}^v \mathbf W_g^v
        + \mathbf b_g^v)\bigr), \quad \mathbf E_u^v = \hat R\, \mathbf E_i^v, \quad
        \bar{\mathbf E}^{id} = \mathrm{LightGCN}_L(\mathbf E^{id})

    :math:`S^m` keeps each item's ``knn_k`` most cosine-similar items on the raw features (weighted,
    :math:`D^{-1/2} S D^{-1/2}`, built once); :math:`S^f` is their element-wise maximum.

    Modality-aware preferences: the fused view weighs each modality's dimensions (softmax over d), and gates
    conditioned on the behaviour embeddings weigh every view:

    .. math::
        \tilde{\mathbf E}^m = \mathrm{softmax}(\mathbf W_2^m \tanh(\mathbf W_1^m \mathbf E^f + \mathbf b^m))
        \odot \mathbf E^m, \quad \mathbf P^v = \mathrm{Dropout}(\sigma(\bar{\mathbf E}^{id} \mathbf W_p^v
        + \mathbf b_p^v)), \quad
        \mathbf E^{side} = \tfrac{1}{M+1}\Bigl(\sum_m \mathbf P^m \odot \tilde{\mathbf E}^m
        + \mathbf P^f \odot \mathbf E^f\Bigr)

    .. math::
        \mathbf E^* = \bar{\mathbf E}^{id} + \mathbf E^{side}, \qquad \hat y_{ui} = \mathbf e_u^{*\top}
        \mathbf e_i^*, \qquad
        \mathcal L = \mathcal L_{BPR} + \lambda_c \bigl(\mathrm{NCE}(\mathbf E_i^{side}, \bar{\mathbf E}_i^{id})
        + \mathrm{NCE}(\mathbf E_u^{side}, \bar{\mathbf E}_u^{id})\bigr)
        + \tfrac{\lambda}{2B}\lVert[\mathbf e_u^*, \mathbf e_i^*, \mathbf e_j^*]\rVert^2

    NCE is InfoNCE (cosine, temperature :math:`\tau`, averaged) over the batch's rows of users, and of
    positive items, each against every row as a negative; a user on two rows is also its own negative, as
    in SMORE's code (:func:`batch_rows_info_nce` computes this on the distinct nodes, at their cost). The
    feature tables :math:`\mathbf x^m` are trained with the rest, as in SMORE's code, starting from the raw
    features. With one modality the fused view is that modality's spectrum under a second filter.

    Difference from SMORE's code: its learning-rate decay (x0.96 every 50 epochs) is not reproduced; the
    shared Trainer's schedules (``train.lr_schedule``) are cosine and cut-on-plateau.

    Training note: at the start the embeddings are small (LightGCN's layer mean shrinks them), so the
    scale-free InfoNCE gradients outweigh BPR's and the model sits near its initial ranking for some epochs,
    fewer at a higher learning rate. Early stopping needs a patience longer than that plateau, hence this
    model's training defaults: learning_rate 0.002, patience 30 (docs/benchmarks/notes.md).

    Cold items (no training interaction) have their ID embedding fixed at zero, so their behaviour embedding
    is zero. Their view embeddings are not: one item-item step brings in the gated ID embeddings of their
    nearest items by content, so cold items are scored from their content neighbours.

    Args:
        config: :class:`SMOREConfig`.
        inputs: sizes, the training interactions and ``features`` (at least one modality).

    Shapes: adjacency (U+I, U+I) sparse; item graphs (I, I) sparse with I * knn_k entries; content (I, F);
    embeddings (U|I, d).
    """

    adjacency: Tensor
    content: Tensor
    warm: Tensor

    def __init__(self, config: SMOREConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("smore", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.modality_dims = [table.shape[1] for table in raw.values()]
        self.register_buffer("content", ContentScaler(raw, scale=config.standardize)(raw), persistent=False)
        # learned change to the feature tables (SMORE's code trains them as embeddings initialised from features)
        self.content_shift = nn.Parameter(torch.zeros_like(self.content)) if config.train_features else None
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        graph = (inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", normalized_adjacency(*graph), persistent=False)
        self.users_from_items = SparseOperator(user_item_matrix(*graph, normalization="sym"))
        item_graphs = [
            knn_graph(table, config.knn_k, weighted=True, normalization="sym", name=name) for name, table in raw.items()
        ]
        self.item_graphs = nn.ModuleList(SparseOperator(g) for g in [*item_graphs, elementwise_max(item_graphs)])
        dim, views = config.embedding_dim, len(self.modalities) + 1
        self.user_id = nn.Embedding(inputs.num_users, dim)
        self.item_id = nn.Embedding(inputs.num_items, dim)
        self.projections = nn.ModuleList(nn.Linear(d, dim) for d in self.modality_dims)
        self.spectrum = SpectrumFusion(len(self.modalities), dim)
        self.view_gates = nn.ModuleList(gate(dim) for _ in range(views))
        self.attention_queries = nn.ModuleList(attention_query(dim) for _ in self.modalities)
        self.preference_gates = nn.ModuleList(gate(dim) for _ in range(views))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_id.weight)
        nn.init.xavier_uniform_(self.item_id.weight)

    def spectral_views(self) -> list[Tensor]:
        r"""The denoised modality signals :math:`\hat{\mathbf H}^m`, then the fused one. Shapes: M + 1 x (I, d)."""
        content = self.content if self.content_shift is None else self.content + self.content_shift
        parts = torch.split(content, self.modality_dims, dim=1)
        projected = [projection(part) for projection, part in zip(self.projections, parts, strict=True)]
        denoised, fused = self.spectrum(projected)
        return [*denoised, fused]

    def view_embeddings(self, item_id: Tensor) -> list[Tensor]:
        """[E^1 .. E^M, E^f], users then items. Shapes: item_id (I, d) -> M + 1 tensors (U+I, d)."""
        views = []
        for signal, view_gate, item_graph in zip(self.spectral_views(), self.view_gates, self.item_graphs, strict=True):
            items = item_id * view_gate(signal)
            for _ in range(self.config.num_item_layers):
                items = item_graph(items)
            views.append(torch.cat([self.users_from_items(items), items]))
        return views

    def forward_views(self) -> tuple[Tensor, Tensor]:
        """(behaviour embeddings, side embeddings), users then items. Shapes: (U+I, d) each."""
        item_id = self.warm * self.item_id.weight
        behaviour = mean_of_layers(self.adjacency, torch.cat([self.user_id.weight, item_id]), self.config.num_ui_layers)
        *modality_views, fused_view = self.view_embeddings(item_id)
        weighted = [
            torch.softmax(query(fused_view), dim=-1) * view
            for query, view in zip(self.attention_queries, modality_views, strict=True)
        ]
        preferences = [
            F.dropout(preference_gate(behaviour), self.config.dropout, training=self.training)
            for preference_gate in self.preference_gates
        ]
        views = [p * v for p, v in zip(preferences, [*weighted, fused_view], strict=True)]
        side = sum_in_order(views) / len(views)  # their mean
        return behaviour, side

    def compute_embeddings(self) -> Embeddings:
        behaviour, side = self.forward_views()
        users, items = torch.split(behaviour + side, [self.num_users, self.num_items])
        return Embeddings(users, items)

    def side_behaviour_contrast(self, side: Tensor, behaviour: Tensor, batch: TrainBatch) -> Tensor:
        """InfoNCE between the side and behaviour views of the batch's users, and of its positive items."""
        loss = side.new_zeros(())
        for offset, nodes in ((0, batch.users), (self.num_users, batch.positive_items)):
            if self.config.contrast_distinct:
                nodes = torch.unique(nodes) + offset
                positives = torch.arange(len(nodes), device=nodes.device)
                loss = loss + info_nce(side.index_select(0, nodes), behaviour.index_select(0, nodes), positives,
                                       self.config.tau).mean()
            else:
                loss = loss + batch_rows_info_nce(side, behaviour, nodes + offset, self.config.tau)
        return loss

    def loss(self, batch: TrainBatch) -> Tensor:
        behaviour, side = self.forward_views()
        users, items = torch.split(behaviour + side, [self.num_users, self.num_items])
        user = users.index_select(0, batch.users)
        positive, negative = items.index_select(0, batch.positive_items), items.index_select(0, batch.negative_items)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        contrastive = self.side_behaviour_contrast(side, behaviour, batch)
        regularization = l2_penalty(user, positive, negative)
        return ranking + self.config.cl_weight * contrastive + self.config.reg_weight * regularization
