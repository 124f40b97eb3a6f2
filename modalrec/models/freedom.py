"""FREEDOM. Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM Multimedia 2023. https://arxiv.org/abs/2211.06924
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency
from modalrec.nn.content import content_tables, standardize, warm_item_mask
from modalrec.nn.graph import unique_pairs
from modalrec.nn.init import check_id_init, start_from_svd
from modalrec.nn.knn import knn_graph, weighted_sum
from modalrec.nn.precision import TrainingTables, check_precision, project
from modalrec.nn.pruning import degree_sensitive_weights, prune_edges
from modalrec.nn.sparse import SparseOperator, mean_of_layers

TEXT_WEIGHT = 0.9  # the paper's text share of the item-item graph (image 0.1), used when no weights are given


Model = TypeVar("Model", bound="FREEDOM")


@dataclass(frozen=True)
class FREEDOMConfig:
    """Defaults: the paper's, except ``num_mm_layers`` (2, the paper's 1) and ``dropout`` (0.5, the paper's 0.8),
    chosen on validation over re-splits of the full data and under the sparsity protocol, where both gained
    (docs/benchmarks/notes.md); ``num_mm_layers=1, dropout=0.8`` is the paper's setting."""

    embedding_dim: int = 64  # d, user and item ID embeddings
    content_dim: int = 64  # size of the projected modality features W_m x_i^m + b_m
    knn_k: int = 10  # k neighbours per item in each modality's frozen kNN graph
    num_ui_layers: int = 2  # L_ui, LightGCN layers on the (pruned) user-item graph
    num_mm_layers: int = 2  # L_ii, propagation steps on the frozen item-item graph
    dropout: float = 0.5  # rho, the fraction of user-item edges pruned each epoch (0 disables pruning)
    modality_loss_weight: float = 1e-3  # lambda, weight of the BPR losses on the projected modality features
    reg_weight: float = 0.0  # L2 on the batch's ID embeddings (the paper uses none)
    modality_weights: dict[str, float] = field(default_factory=dict)  # alpha_m; {} = text 0.9, rest share 0.1
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality before its projection (the kNN graph uses raw features)
    id_init: str = "xavier"  # random; "svd": start from the training matrix's truncated SVD (then patience 50)
    svd_norm: float = 1.0  # with id_init="svd": the mean norm of those starting rows
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, content_dim=self.content_dim, knn_k=self.knn_k,
                       num_ui_layers=self.num_ui_layers, num_mm_layers=self.num_mm_layers)
        check_range("model.dropout", self.dropout, low=0, high=1, high_open=True)
        if any(weight < 0 for weight in self.modality_weights.values()):
            raise ConfigError("model.modality_weights", f"weights must be >= 0, got {self.modality_weights}")
        check_id_init(self.id_init, self.svd_norm)
        check_precision(self.train_precision)


def modality_weights(requested: dict[str, float], modalities: list[str]) -> list[float]:
    """The weight alpha_m of each modality's item-item graph, summing to 1.

    ``requested`` must name exactly ``modalities`` and is normalised to sum 1. When it is empty, text gets
    :data:`TEXT_WEIGHT` and the other modalities share the rest equally (the paper's 0.9 text / 0.1 image);
    without a text modality all get equal weights.
    """
    if requested:
        if sorted(requested) != sorted(modalities):
            raise ConfigError(
                "model.modality_weights",
                f"expected a weight for each of {', '.join(modalities)}, found {', '.join(sorted(requested))}",
            )
        total = sum(requested.values())
        if total <= 0:
            raise ConfigError("model.modality_weights", f"weights must not all be 0, got {requested}")
        return [requested[m] / total for m in modalities]
    if "text" in modalities and len(modalities) > 1:
        rest = (1.0 - TEXT_WEIGHT) / (len(modalities) - 1)
        return [TEXT_WEIGHT if m == "text" else rest for m in modalities]
    return [1.0 / len(modalities)] * len(modalities)


LEARNING_RATE = 0.002  # the training default, chosen on validation over re-splits (docs/benchmarks/notes.md)


def training_defaults(config: FREEDOMConfig) -> dict[str, float]:
    """Training defaults: a step size of :data:`LEARNING_RATE`; with the SVD start also a patience of 50
    validations, since training first moves away from that start before it improves on it, which a shorter
    patience mistakes for a plateau (docs/benchmarks/notes.md)."""
    patience = {"patience": 50} if config.id_init == "svd" else {}
    return {"learning_rate": LEARNING_RATE, **patience}


@register_model(
    "freedom",
    config=FREEDOMConfig,
    description="FREEDOM: LightGCN on a degree-pruned user-item graph plus a frozen content kNN item-item graph",
    uses_content=True,
    training_defaults=training_defaults,  # why: docs/benchmarks/notes.md, FREEDOM's training defaults
    capabilities=Capabilities(dot_product=True, cold_items=True),
)
class FREEDOM(Recommender[FREEDOMConfig]):
    r"""LightGCN on a denoised user-item graph, plus ID embeddings smoothed over a frozen item-item graph.

    The item-item graph is built once from the raw features of each modality :math:`m`: the binary kNN
    graph :math:`A^m` (top-k cosine neighbours, the item itself included), normalised and weighted,

    .. math::
        S = \sum_m \alpha_m\, (D^m)^{-1/2} A^m (D^m)^{-1/2}, \qquad
        \mathbf h = S^{L_{ii}}\, \mathbf E_{item}.

    Each epoch keeps :math:`(1-\rho)|\mathcal E|` user-item edges, drawn without replacement with
    probability :math:`\propto 1/\sqrt{d_u d_i}` (edges between popular nodes are pruned most), and
    LightGCN runs on that graph's normalised adjacency :math:`\hat A_\rho`; evaluation uses the full graph:

    .. math::
        \mathbf E^{(l+1)} = \hat A_\rho \mathbf E^{(l)}, \qquad
        \mathbf e_u = \tfrac{1}{L_{ui}+1}\sum_{l} \mathbf e_u^{(l)}, \qquad
        \mathbf e_i = \tfrac{1}{L_{ui}+1}\sum_{l} \mathbf e_i^{(l)} + \mathbf h_i, \qquad
        \hat y_{ui} = \mathbf e_u^\top \mathbf e_i.

    Loss, with projected features :math:`\tilde{\mathbf x}_i^m = W_m \mathbf x_i^m + \mathbf b_m`:

    .. math::
        \mathcal L = \mathrm{BPR}(\mathbf e_u^\top\mathbf e_i, \mathbf e_u^\top\mathbf e_j)
        + \lambda \sum_m \mathrm{BPR}(\mathbf e_u^\top\tilde{\mathbf x}_i^m, \mathbf e_u^\top\tilde{\mathbf x}_j^m)
        + \tfrac{\gamma}{2B}\lVert\mathbf E^{(0)}_{batch}\rVert^2.

    The projected features only shape the embeddings through that loss; the score reads content through
    :math:`S`. Items with no training interaction (cold) have their ID embedding fixed at zero, here and
    as a neighbour, and no user-item edge, so the paper's formula would leave them only :math:`\mathbf h_i`,
    a vector much shorter than a warm item's, ranked below every warm item. In its place the missing
    collaborative part :math:`\mathbf g_i` (the layer mean above) is estimated from the content neighbours
    (an addition to the paper, for cold items only):

    .. math::
        \mathbf e_i = (S\,\mathbf G)_i + \mathbf h_i \quad \text{for a cold item } i,

    where :math:`\mathbf G` holds every item's :math:`\mathbf g_j` (0 for cold items). A cold item whose
    neighbours are all cold scores 0.

    With ``id_init="svd"`` :math:`\mathbf E^{(0)}` starts from the truncated SVD of the training matrix
    (:func:`modalrec.nn.init.svd_factors`) instead of random values (``"xavier"``, the paper's and the
    default), so training starts from a ranking of the training data. It stays an option because a start fitted
    to few observed pairs can hold a model back on sparse data (measurements: docs/benchmarks/notes.md).

    With ``train_precision="auto"`` the modality loss's feature projections multiply in bfloat16 during
    training where the device does so natively (:mod:`modalrec.nn.precision`); parameters, optimizer, the
    graphs and all scores stay float32.

    Args:
        config: :class:`FREEDOMConfig`.
        inputs: sizes, the training interactions and ``features`` (at least one modality).

    Shapes: adjacency (U+I, U+I) sparse CSR; item graph (I, I) sparse CSR with at most M * I * k values;
    embeddings (U, d) and (I, d).
    """

    adjacency: Tensor
    item_graph: Tensor
    edge_users: Tensor
    edge_items: Tensor
    edge_weights: Tensor
    warm: Tensor
    content: Tensor

    def __init__(self, config: FREEDOMConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("freedom", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.register_buffer("item_graph", self.build_item_graph(raw), persistent=False)
        self.item_operator = SparseOperator(self.item_graph)  # S with its transpose kept for the backward pass
        users, items = unique_pairs(inputs.train_users, inputs.train_items, inputs.num_items)
        self.register_buffer("edge_users", users, persistent=False)
        self.register_buffer("edge_items", items, persistent=False)
        self.register_buffer("edge_weights", degree_sensitive_weights(users, items), persistent=False)
        adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, users, items)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        tables = [standardize(t) if config.standardize else t for t in raw.values()]
        self.register_buffer("content", torch.cat(tables, dim=1), persistent=False)  # (I, F), F = sum of F_m
        self.modality_dims = [t.shape[1] for t in tables]
        self.projections = nn.ModuleList(nn.Linear(t.shape[1], config.content_dim) for t in raw.values())
        self.training_tables = TrainingTables(config.train_precision)
        self.user_embedding = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_embedding = nn.Embedding(inputs.num_items, config.embedding_dim)
        self._pruned_adjacency: Tensor | None = None
        self.reset_parameters()
        if config.id_init == "svd":
            start_from_svd(self.user_embedding, self.item_embedding, inputs.train_users, inputs.train_items,
                           config.svd_norm)

    def build_item_graph(self, raw: dict[str, Tensor]) -> Tensor:
        """S: the weighted sum of the modalities' binary, symmetric-normalised kNN graphs."""
        weights = modality_weights(self.config.modality_weights, list(raw))
        graphs = [knn_graph(table, self.config.knn_k, name=m) for m, table in raw.items()]
        return weighted_sum(graphs, weights)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        for projection in self.projections:
            cast(nn.Linear, projection).reset_parameters()

    def train(self: Model, mode: bool = True) -> Model:
        self._pruned_adjacency = None  # each call in training mode (once per epoch) draws a new pruned graph
        super().train(mode)
        return self

    def pruned_adjacency(self) -> Tensor:
        """This epoch's normalised adjacency of the pruned user-item graph, drawn on first use."""
        if self._pruned_adjacency is None:
            users, items = prune_edges(self.edge_users, self.edge_items, self.edge_weights, self.config.dropout)
            self._pruned_adjacency = normalized_adjacency(self.num_users, self.num_items, users, items)
        return self._pruned_adjacency

    def item_ids(self) -> Tensor:
        return self.warm * self.item_embedding.weight  # (I, d); cold rows are 0

    def compute_embeddings(self) -> Embeddings:
        adjacency = self.pruned_adjacency() if self.training else self.adjacency
        ego = torch.cat([self.user_embedding.weight, self.item_ids()])  # (U+I, d)
        nodes = mean_of_layers(adjacency, ego, self.config.num_ui_layers)
        users, items = torch.split(nodes, [self.num_users, self.num_items])
        smoothed = self.item_ids()
        for _ in range(self.config.num_mm_layers):
            smoothed = self.item_operator(smoothed)  # h, (I, d)
        cold_estimate = (1 - self.warm) * self.item_operator(items)  # S g on cold rows, 0 on warm
        return Embeddings(users, items + cold_estimate + smoothed)

    def modality_loss(self, user: Tensor, batch: TrainBatch) -> Tensor:
        """Sum over modalities of BPR on the projected features of the batch's items.

        The projections run in the training precision, over the batch's distinct items when it draws fewer
        than the catalogue holds, else over the whole (contiguous) table, cheaper than gathering its rows.
        """
        content = self.training_tables(self.content)
        positive, negative = batch.positive_items, batch.negative_items
        if 2 * len(positive) < self.num_items:
            items, inverse = torch.unique(torch.cat([positive, negative]), return_inverse=True)
            content, (positive, negative) = content.index_select(0, items), inverse.chunk(2)
        total = user.new_zeros(())
        for projection, features in zip(self.projections, torch.split(content, self.modality_dims, dim=1),
                                        strict=True):
            projected = project(features, cast(nn.Linear, projection))  # (rows, content_dim)
            total = total + bpr_loss((user * projected.index_select(0, positive)).sum(1),
                                     (user * projected.index_select(0, negative)).sum(1))
        return total

    def loss(self, batch: TrainBatch) -> Tensor:
        vectors = self.compute_embeddings()
        user = vectors.users.index_select(0, batch.users)
        positive = vectors.items.index_select(0, batch.positive_items)
        negative = vectors.items.index_select(0, batch.negative_items)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        loss = ranking + self.config.reg_weight * l2_penalty(
            self.user_embedding(batch.users),
            self.item_embedding(batch.positive_items),
            self.item_embedding(batch.negative_items),
        )
        if self.config.modality_loss_weight > 0:
            loss = loss + self.config.modality_loss_weight * self.modality_loss(user, batch)
        return loss
