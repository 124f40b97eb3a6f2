"""LGMRec. Guo et al., "LGMRec: Local and Global Graph Learning for Multimodal Recommendation", AAAI 2024.
https://arxiv.org/abs/2312.16400
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency, propagate
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.contrastive import info_nce
from modalrec.nn.hypergraph import hyperedge_assignment, hypergraph_propagate
from modalrec.nn.reduce import sum_in_order
from modalrec.nn.sparse import SparseOperator, mean_of_layers, user_item_matrix


@dataclass(frozen=True)
class LGMRecConfig:
    embedding_dim: int = 64  # d, for ID embeddings and projected modality features
    num_ui_layers: int = 2  # L, LightGCN layers of the collaborative graph embedding (n_ui_layers)
    num_modal_layers: int = 2  # propagation steps of the modality graph embedding (n_mm_layers)
    num_hyper_layers: int = 1  # hypergraph layers (n_hyper_layer)
    num_hyperedges: int = 4  # A, learnable hyperedges per modality (hyper_num)
    hyperedge_dropout: float = 0.5  # dropout on the hyperedge assignments while training (1 - keep_rate)
    alpha: float = 0.3  # weight of the global (hypergraph) embeddings in the final ones
    tau: float = 0.2  # temperature of the Gumbel-softmax and of the hypergraph contrastive loss
    cl_weight: float = 1e-5  # lambda_c, weight of the hypergraph contrastive loss (summed over the batch)
    reg_weight: float = 1e-5  # lambda, L2 on the batch's final user, positive and negative embeddings
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality to zero mean, unit average norm before projecting

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, num_modal_layers=self.num_modal_layers,
                       num_hyper_layers=self.num_hyper_layers, num_hyperedges=self.num_hyperedges)
        check_range("model.num_ui_layers", self.num_ui_layers, low=0)
        check_range("model.hyperedge_dropout", self.hyperedge_dropout, low=0, high=1, high_open=True)
        check_range("model.tau", self.tau, low=0, low_open=True)


@register_model(
    "lgmrec",
    config=LGMRecConfig,
    description="LGMRec: local user-item graph embeddings plus a global hypergraph of learnable hyperedges",
    uses_content=True,
    training_defaults={"epochs": 100},  # a time cap, with early stopping still on (why: docs/benchmarks/notes.md)
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class LGMRec(Recommender[LGMRecConfig]):
    r"""Local graph embeddings of IDs and of each modality, plus global embeddings from a hypergraph.

    Local, collaborative (CGE): LightGCN on the ID embeddings, :math:`\bar{\mathbf E} = \mathrm{LightGCN}_L
    (\mathbf E)`. Local, per modality (MGE): items project their features, users average their items'
    projections, and both are propagated :math:`L_m` times over the normalised graph :math:`\hat A`:

    .. math::
        \mathbf e_i^m = \mathbf x_i^m \mathbf W_m, \quad
        \mathbf e_u^m = \tfrac{1}{|\mathcal N_u|}\sum_{i \in \mathcal N_u} \mathbf e_i^m, \quad
        \mathbf E^m = \hat A^{L_m} [\mathbf E_u^m; \mathbf E_i^m], \quad
        \mathbf E_{lge} = \bar{\mathbf E} + \sum_m \mathrm{norm}(\mathbf E^m)

    Global (GHE): items and users are assigned to A learnable hyperedges per modality by a Gumbel-softmax
    (rows sum to 1), with :math:`\mathbf V^m` the hyperedge embeddings and :math:`R` the interactions;
    hypergraph layers run on the CGE item embeddings:

    .. math::
        \mathbf H_i^m = \mathrm{GS}(\mathbf X^m \mathbf V^m / \tau), \quad
        \mathbf H_u^m = \mathrm{GS}(R\, \mathbf X^m \mathbf V^m / \tau), \quad
        \mathbf E_i^{m,(h+1)} = \mathbf H_i^m \mathbf H_i^{m\top} \mathbf E_i^{m,(h)}, \quad
        \mathbf E_u^m = \mathbf H_u^m \mathbf H_i^{m\top} \mathbf E_i^{m,(H-1)}

    with :math:`\mathbf E_i^{m,(0)} = \bar{\mathbf E}_i` and dropout on :math:`\mathbf H` while training.
    Then :math:`\mathbf E_{ghe} = \sum_m [\mathbf E_u^m; \mathbf E_i^m]` and

    .. math::
        \mathbf E^* = \mathbf E_{lge} + \alpha\, \mathrm{norm}(\mathbf E_{ghe}), \qquad
        \hat y_{ui} = \mathbf e_u^{*\top} \mathbf e_i^*, \qquad
        \mathcal L = \mathcal L_{BPR} + \lambda_c \mathcal L_{HCL}
        + \tfrac{\lambda}{2B}\lVert[\mathbf e_u^*, \mathbf e_i^*, \mathbf e_j^*]\rVert^2

    :math:`\mathcal L_{HCL}` is InfoNCE (cosine, temperature :math:`\tau`, summed over the batch) between the
    global embeddings of two modalities for the batch's users (all users as negatives) and positive items
    (all items as negatives), over every pair of modalities; with one modality it is zero.

    Differences from the paper's code: at inference the hyperedge assignments are the noise-free
    :math:`\mathrm{softmax}(\cdot/\tau)`, so scores are deterministic (MMRec also samples Gumbel noise when it
    scores); the L2 term is the squared norm (MMRec: the norm).

    Cold items (no training interaction) have their ID embedding fixed at zero, so their CGE and MGE parts
    are zero (they have no edges). They are scored from content through the global part: their hyperedge
    assignment comes from their features, so :math:`\mathbf e_i^* = \alpha\,\mathrm{norm}(\sum_m
    \mathbf H_i^m \mathbf H_i^{m\top} \bar{\mathbf E}_i)`.

    Args:
        config: :class:`LGMRecConfig`.
        inputs: sizes, the training interactions and ``features`` (at least one modality).

    Shapes: adjacency (U+I, U+I) sparse; content (I, F); assignments (I, A) and (U, A); embeddings (U|I, d).
    """

    adjacency: Tensor
    content: Tensor
    warm: Tensor

    def __init__(self, config: LGMRecConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("lgmrec", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.modality_dims = [table.shape[1] for table in raw.values()]
        self.scaler = ContentScaler(raw, scale=config.standardize)
        self.register_buffer("content", self.scaler(raw), persistent=False)  # (I, F)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        graph = (inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", normalized_adjacency(*graph), persistent=False)
        self.sum_over_items = SparseOperator(user_item_matrix(*graph, normalization="none"))  # R
        self.mean_over_items = SparseOperator(user_item_matrix(*graph, normalization="mean"))  # D_u^-1 R
        self.user_id = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_id = nn.Embedding(inputs.num_items, config.embedding_dim)
        self.projections = nn.ModuleList(nn.Linear(d, config.embedding_dim, bias=False) for d in self.modality_dims)
        self.hyperedges = nn.ModuleList(nn.Linear(d, config.num_hyperedges, bias=False) for d in self.modality_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_id.weight)
        nn.init.xavier_uniform_(self.item_id.weight)
        for layer in [*self.projections, *self.hyperedges]:
            nn.init.xavier_uniform_(layer.weight)

    def hyperedge_logits(self, content: Tensor) -> list[Tensor]:
        """X^m V^m for each modality. Shapes: (N, F) scaled content -> M tensors (N, A)."""
        parts = torch.split(content, self.modality_dims, dim=1)
        return [hyperedges(part) for hyperedges, part in zip(self.hyperedges, parts, strict=True)]

    def modality_products(self) -> list[tuple[Tensor, Tensor]]:
        """(e_i^m = x_i^m W_m (I, d), X^m V^m (I, A)) for each modality of the catalogue.

        Both come from one product with the stacked weights [W_m; V_m], so each feature table is read once;
        the columns are computed exactly as by two separate products.
        """
        parts = torch.split(self.content, self.modality_dims, dim=1)
        sizes = [self.config.embedding_dim, self.config.num_hyperedges]
        products = []
        for projection, hyperedges, part in zip(self.projections, self.hyperedges, parts, strict=True):
            weights = [cast(nn.Linear, layer).weight for layer in (projection, hyperedges)]
            both = F.linear(part, torch.cat(weights))
            items, logits = torch.split(both, sizes, dim=1)
            products.append((items, logits))
        return products

    def hyperedge_assignments(self, logits: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """(H_u (U, A), H_i (I, A)) per modality from the catalogue's X^m V^m (I, A) (:meth:`modality_products`);
        Gumbel-softmax samples in training mode, rows sum to 1."""
        assignments = []
        for item_logits in logits:
            user_logits = self.sum_over_items(item_logits)  # (U, A)
            tau, sample = self.config.tau, self.training
            users = hyperedge_assignment(user_logits, tau, sample=sample)
            items = hyperedge_assignment(item_logits, tau, sample=sample)
            assignments.append((users, items))
        return assignments

    def local_embeddings(self, projected: list[Tensor]) -> tuple[Tensor, Tensor]:
        """(CGE embeddings, CGE + sum_m norm(MGE_m)) from each modality's projected items e_i^m (I, d).

        Shapes: M x (I, d) -> (U+I, d) each.
        """
        ego = torch.cat([self.user_id.weight, self.warm * self.item_id.weight])
        collaborative = mean_of_layers(self.adjacency, ego, self.config.num_ui_layers)
        local = collaborative
        for items in projected:
            nodes = torch.cat([self.mean_over_items(items), items])
            for _ in range(self.config.num_modal_layers):
                nodes = propagate(self.adjacency, nodes)
            local = local + F.normalize(nodes, dim=1)
        return collaborative, local

    def forward_views(self) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Final embeddings E* (U+I, d), each modality's global embeddings (U+I, d) and hyperedges (A, d)."""
        projected, item_logits = zip(*self.modality_products(), strict=True)
        collaborative, local = self.local_embeddings(list(projected))
        dropout = self.config.hyperedge_dropout
        global_views, hyperedge_embeddings = [], []
        for user_assignment, item_assignment in self.hyperedge_assignments(list(item_logits)):
            item_assignment = F.dropout(item_assignment, dropout, training=self.training)
            user_assignment = F.dropout(user_assignment, dropout, training=self.training)
            hyperedges, items = hypergraph_propagate(
                item_assignment, collaborative[self.num_users :], self.config.num_hyper_layers
            )
            global_views.append(torch.cat([user_assignment @ hyperedges, items]))
            hyperedge_embeddings.append(hyperedges)
        final = local + self.config.alpha * F.normalize(sum_in_order(global_views), dim=1)
        return final, global_views, hyperedge_embeddings

    def compute_embeddings(self) -> Embeddings:
        users, items = torch.split(self.forward_views()[0], [self.num_users, self.num_items])
        return Embeddings(users, items)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features: the global part alone, as for cold catalogue items.

        Shapes: {modality: (N, F_m)} -> (N, d), comparable with ``compute_embeddings().items``.
        """
        content = self.scaler({m: features[m].to(self.content.device) for m in self.modalities})
        hyperedges = self.forward_views()[2]
        per_modality = [
            hyperedge_assignment(logits, self.config.tau, sample=False) @ z
            for logits, z in zip(self.hyperedge_logits(content), hyperedges, strict=True)
        ]
        return self.config.alpha * F.normalize(sum_in_order(per_modality), dim=1)

    def hypergraph_contrastive_loss(self, global_views: list[Tensor], batch: TrainBatch) -> Tensor:
        """InfoNCE between modalities' global views, summed over the batch's users and positive items.

        Each distinct node is scored once and weighted by its count in the batch: the same sum, less work.
        """
        views = [torch.split(view, [self.num_users, self.num_items]) for view in global_views]  # M x (users, items)
        loss = global_views[0].new_zeros(())
        for part, batch_nodes in enumerate((batch.users, batch.positive_items)):
            nodes, counts = torch.unique(batch_nodes, return_counts=True)
            for first, second in itertools.combinations(views, 2):
                nce = info_nce(first[part].index_select(0, nodes), second[part], nodes, self.config.tau)
                loss = loss + (counts * nce).sum()
        return loss

    def loss(self, batch: TrainBatch) -> Tensor:
        final, global_views, _ = self.forward_views()
        users, items = torch.split(final, [self.num_users, self.num_items])
        user = users.index_select(0, batch.users)
        positive, negative = items.index_select(0, batch.positive_items), items.index_select(0, batch.negative_items)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        contrastive = self.hypergraph_contrastive_loss(global_views, batch)
        regularization = l2_penalty(user, positive, negative)
        return ranking + self.config.cl_weight * contrastive + self.config.reg_weight * regularization
