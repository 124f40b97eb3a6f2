"""LATTICE. Zhang, Zhu, Liu, Wu, Zhang, Wang & Wang, "Mining Latent Structures for Multimedia
Recommendation", ACM Multimedia 2021. https://arxiv.org/abs/2104.09036
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency
from modalrec.nn.content import content_tables, standardize, warm_item_mask
from modalrec.nn.graph import csr_from_rows
from modalrec.nn.knn import knn_neighbours
from modalrec.nn.sparse import mean_of_layers


Model = TypeVar("Model", bound="LATTICE")


@dataclass(frozen=True)
class LATTICEConfig:
    embedding_dim: int = 64  # d, user and item ID embeddings
    content_dim: int = 64  # d_m, size of the projected features W_m e_i^m + b_m the learned graphs come from
    knn_k: int = 10  # k neighbours per item in every kNN graph (original and learned)
    lambda_coeff: float = 0.9  # lambda, the original graph's share: A^m = (1 - lambda) learned + lambda original
    num_layers: int = 1  # L, graph convolutions on the item-item graph
    num_ui_layers: int = 2  # LightGCN layers of the collaborative backbone; 0 gives the MF backbone
    reg_weight: float = 1e-3  # L2 on the batch's final user and item vectors
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality before its projection (the original graph uses raw features)

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, content_dim=self.content_dim, knn_k=self.knn_k,
                       num_layers=self.num_layers)
        check_range("model.num_ui_layers", self.num_ui_layers, low=0)
        check_range("model.lambda_coeff", self.lambda_coeff, low=0, high=1)


@register_model(
    "lattice",
    config=LATTICEConfig,
    description="LATTICE: learned modality-aware item-item graphs (sparse kNN) on top of LightGCN",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True),
)
class LATTICE(Recommender[LATTICEConfig]):
    r"""A collaborative backbone whose item vectors add a convolution over learned item-item graphs.

    For each modality :math:`m`, the original graph :math:`\tilde A^m` is the weighted kNN graph of the raw
    features (built once) and the learned graph :math:`\tilde S^m` the weighted kNN graph of the projected
    features :math:`\tilde{\mathbf e}_i^m = W_m \mathbf e_i^m + \mathbf b_m`: cosine similarities, each
    item's top-k kept (itself included), symmetric-normalised :math:`D^{-1/2} S D^{-1/2}`. Then

    .. math::
        A = \sum_m \alpha_m \big[(1-\lambda)\,\tilde S^m + \lambda\,\tilde A^m\big], \quad
        \boldsymbol\alpha = \mathrm{softmax}(\mathbf w), \qquad
        \mathbf h^{(l+1)} = A\,\mathbf h^{(l)}, \quad \mathbf h^{(0)} = \mathbf E_{item},

    and, with :math:`\mathbf e_u, \mathbf e_i` the LightGCN backbone's layer means (plain ID embeddings
    when ``num_ui_layers=0``, the MF backbone),

    .. math::
        \hat{\mathbf e}_i = \mathbf e_i + \mathbf h_i^{(L)} / \lVert\mathbf h_i^{(L)}\rVert_2, \qquad
        \hat y_{ui} = \mathbf e_u^\top \hat{\mathbf e}_i, \qquad
        \mathcal L = \mathrm{BPR} + \tfrac{\gamma}{2B}\big(\lVert\mathbf e_u\rVert^2
        + \lVert\hat{\mathbf e}_i\rVert^2 + \lVert\hat{\mathbf e}_j\rVert^2\big).

    As in the authors' code, :math:`A` is rebuilt once per epoch: the first loss after ``train()`` builds
    it with gradients (that batch trains :math:`W_m, \mathbf b_m, \mathbf w`), later batches of the epoch
    reuse it detached. Evaluation rebuilds it from the current weights, so a loaded model needs no cache.
    Every graph is sparse, I * k values per modality and graph.

    Items with no training interaction (cold) have their ID embedding fixed at zero, in the backbone and as
    neighbours, and no user-item edge, so the paper's formula would leave them only
    :math:`\mathbf h_i / \lVert \mathbf h_i \rVert` and rank them below every warm item. In its place the
    missing backbone vector is estimated from the content neighbours (an addition to the paper, for cold
    items only): :math:`\hat{\mathbf e}_i = (A\,\mathbf E)_i + \mathbf h_i / \lVert \mathbf h_i \rVert`,
    with :math:`\mathbf E` every item's backbone vector :math:`\mathbf e_j` (0 for cold items).

    Args:
        config: :class:`LATTICEConfig`.
        inputs: sizes, the training interactions and ``features`` (at least one modality).

    Shapes: adjacency (U+I, U+I) sparse CSR; item graph A (I, I) sparse CSR; embeddings (U, d), (I, d).
    """

    adjacency: Tensor
    original_cols: Tensor
    original_values: Tensor
    content: Tensor
    warm: Tensor

    def __init__(self, config: LATTICEConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("lattice", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        originals = [knn_neighbours(t, config.knn_k, weighted=True, name=m) for m, t in raw.items()]
        self.register_buffer("original_cols", torch.stack([cols for cols, _ in originals]), persistent=False)  # (M, I, k)
        self.register_buffer("original_values", torch.stack([values for _, values in originals]), persistent=False)
        tables = [standardize(t) if config.standardize else t for t in raw.values()]
        self.register_buffer("content", torch.cat(tables, dim=1), persistent=False)  # (I, F), F = sum of F_m
        self.modality_dims = [t.shape[1] for t in tables]
        self.projections = nn.ModuleList(nn.Linear(t.shape[1], config.content_dim) for t in tables)
        self.modality_logits = nn.Parameter(torch.zeros(len(tables)))  # w, alpha = softmax(w)
        adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        self.user_embedding = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_embedding = nn.Embedding(inputs.num_items, config.embedding_dim)
        self._item_graph: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        nn.init.zeros_(self.modality_logits)
        for projection in self.projections:
            cast(nn.Linear, projection).reset_parameters()

    def train(self: Model, mode: bool = True) -> Model:
        self._item_graph = None  # each call in training mode (once per epoch) rebuilds the learned graph
        super().train(mode)
        return self

    def learned_neighbours(self) -> list[tuple[Tensor, Tensor]]:
        r"""Each modality's :math:`\tilde S^m` from the current projections, as row lists (columns, values).
        Shapes: [((I, k), (I, k))]."""
        parts = torch.split(self.content, self.modality_dims, dim=1)
        return [
            knn_neighbours(projection(features), self.config.knn_k, weighted=True, name=m)
            for m, projection, features in zip(self.modalities, self.projections, parts, strict=True)
        ]

    def learned_graphs(self) -> list[Tensor]:
        r"""Each modality's :math:`\tilde S^m` from the current projections. Shapes: [(I, I) sparse CSR]."""
        return [csr_from_rows(cols, values, self.num_items) for cols, values in self.learned_neighbours()]

    def build_item_graph(self) -> Tensor:
        """A from the current weights, differentiable in the projections and the modality weights: the
        learned and original graphs of every modality merged row by row, each item keeping its neighbours."""
        alpha = torch.softmax(self.modality_logits, dim=0)
        lam = self.config.lambda_coeff
        cols, values = [], []
        for m, (learned_cols, learned_values) in enumerate(self.learned_neighbours()):
            cols += [learned_cols, self.original_cols[m]]
            values += [alpha[m] * (1 - lam) * learned_values, alpha[m] * lam * self.original_values[m]]
        return csr_from_rows(torch.cat(cols, 1), torch.cat(values, 1), self.num_items)

    def item_graph(self) -> Tensor:
        """A: rebuilt in eval mode; in training mode built at the epoch's first call and then reused detached."""
        if not self.training:
            return self.build_item_graph()
        if self._item_graph is None:
            graph = self.build_item_graph()
            self._item_graph = graph.detach()
            return graph
        return self._item_graph

    def compute_embeddings(self) -> Embeddings:
        item_ids = self.warm * self.item_embedding.weight  # (I, d); cold rows are 0
        ego = torch.cat([self.user_embedding.weight, item_ids])  # (U+I, d)
        nodes = mean_of_layers(self.adjacency, ego, self.config.num_ui_layers)
        users, items = torch.split(nodes, [self.num_users, self.num_items])
        graph, smoothed = self.item_graph(), item_ids
        for _ in range(self.config.num_layers):
            smoothed = torch.sparse.mm(graph, smoothed)  # h, (I, d)
        cold_estimate = (1 - self.warm) * torch.sparse.mm(graph, items)  # A e on cold rows, 0 on warm
        return Embeddings(users, items + cold_estimate + F.normalize(smoothed, dim=1))

    def loss(self, batch: TrainBatch) -> Tensor:
        vectors = self.compute_embeddings()
        user = vectors.users.index_select(0, batch.users)
        positive = vectors.items.index_select(0, batch.positive_items)
        negative = vectors.items.index_select(0, batch.negative_items)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        return ranking + self.config.reg_weight * l2_penalty(user, positive, negative)
