"""MMGCN. Wei, Wang, Nie, He, Hong & Chua, "MMGCN: Multi-modal Graph Convolution Network for Personalized
Recommendation of Micro-video", ACM Multimedia 2019, 1437-1445. https://doi.org/10.1145/3343031.3351034
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.gcn import AGGREGATIONS, GraphAggregation
from modalrec.nn.reduce import sum_in_order
from modalrec.nn.sparse import mean_of_layers

FUSIONS = ("sum", "concat")


@dataclass(frozen=True)
class MMGCNConfig:
    """Defaults: the paper's, except ``aggregation``, ``concat``, ``reg_weight``, ``output_reg_weight``,
    ``id_branch`` and ``modality_gate`` (the class docstring says why);
    ``output_reg_weight=0, id_branch=False, modality_gate=False`` is the paper's model."""

    embedding_dim: int = 64  # d: ID embeddings, user preferences, projected features and every layer's output
    num_layers: int = 2  # L, graph-convolution layers per modality
    aggregation: str = "add"  # "add": D~^-1/2 (A+I) D~^-1/2 (GCN); "mean": D~^-1 (A+I), like the paper's f_avg
    concat: bool = True  # combination layer: True concatenates [h, u_hat] (g_co), False adds them (g_ele)
    fusion: str = "sum"  # "sum": the paper's (sum_m u_m).(sum_m i_m); "concat": sum_m u_m.i_m
    reg_weight: float = 1e-4  # lambda on the batch's ID embeddings and user preference vectors
    output_reg_weight: float = 1e-2  # L2 on the batch's fused user and item vectors, what the score dots (0: paper)
    id_branch: bool = True  # add the ID embeddings smoothed LightGCN-style to the fused vectors (not in the paper)
    modality_gate: bool = True  # scale each modality's vectors by a learned scalar that starts at 0 (needs id_branch)
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them

    def __post_init__(self) -> None:
        check_range("model.embedding_dim", self.embedding_dim, low=1)
        check_range("model.output_reg_weight", self.output_reg_weight, low=0)
        check_range("model.num_layers", self.num_layers, low=1)
        if self.aggregation not in AGGREGATIONS:
            choices = ", ".join(AGGREGATIONS)
            raise ConfigError("model.aggregation", f"expected one of {choices}, got '{self.aggregation}'")
        if self.fusion not in FUSIONS:
            raise ConfigError("model.fusion", f"expected one of {', '.join(FUSIONS)}, got '{self.fusion}'")
        if self.modality_gate and self.fusion == "concat":
            raise ConfigError("model.modality_gate", "cannot open with fusion=concat: the score holds g_m^2 u_m.i_m, "
                              "whose gradient at g_m = 0 is 0; set model.modality_gate=false or model.fusion=sum")
        if self.modality_gate and not self.id_branch:
            raise ConfigError("model.modality_gate", "needs model.id_branch=true (with every gate at 0 nothing would "
                              "learn); for the paper's model set model.modality_gate=false too")


class MMGCNLayer(nn.Module):
    r"""One aggregation plus combination step of one modality's graph convolution (all nodes at once).

    .. math::
        H = \sigma(\hat A X W_1), \qquad
        \hat X = \sigma(X W_2 + b_2) + E_{id}, \qquad
        X' = \sigma([H \,\Vert\, \hat X] W_3 + b_3) \ \text{(concat)} \quad\text{or}\quad
        X' = \sigma(H W_3 + b_3 + \hat X)

    Shapes: X, E_id (N, d) -> (N, d).
    """

    def __init__(self, embedding_dim: int, concat: bool) -> None:
        super().__init__()
        self.concat = concat
        self.neighbour_weight = nn.Linear(embedding_dim, embedding_dim, bias=False)  # W_1
        self.self_weight = nn.Linear(embedding_dim, embedding_dim)  # W_2
        self.combine = nn.Linear((2 if concat else 1) * embedding_dim, embedding_dim)  # W_3

    def reset_parameters(self) -> None:
        for linear in (self.neighbour_weight, self.self_weight, self.combine):
            nn.init.xavier_uniform_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor, id_embedding: Tensor, aggregate: Callable[[Tensor], Tensor]) -> Tensor:
        neighbourhood = F.leaky_relu(aggregate(self.neighbour_weight(x)))  # h
        own = F.leaky_relu(self.self_weight(x)) + id_embedding  # u_hat, i_hat
        if self.concat:
            return F.leaky_relu(self.combine(torch.cat([neighbourhood, own], dim=1)))
        return F.leaky_relu(self.combine(neighbourhood) + own)


class ModalityBranch(nn.Module):
    """One modality's graph convolution: user preferences, the feature projection and L layers.

    Shapes: raw features (I, F_m), standardised once with catalogue statistics; output (U+I, d).
    """

    features: Tensor

    def __init__(self, modality: str, raw_features: Tensor, num_users: int, config: MMGCNConfig) -> None:
        super().__init__()
        self.modality = modality
        self.scaler = ContentScaler({modality: raw_features})
        features = self.scaler({modality: raw_features})  # (I, F_m)
        self.register_buffer("features", features, persistent=False)
        self.user_preference = nn.Embedding(num_users, config.embedding_dim)  # u_m
        self.feature_projection = nn.Linear(features.shape[1], config.embedding_dim)  # P_m
        self.layers = nn.ModuleList(MMGCNLayer(config.embedding_dim, config.concat) for _ in range(config.num_layers))

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_preference.weight)
        nn.init.xavier_uniform_(self.feature_projection.weight)
        nn.init.zeros_(self.feature_projection.bias)
        for layer in self.layers:
            cast(MMGCNLayer, layer).reset_parameters()

    def forward(self, id_embedding: Tensor, aggregate: GraphAggregation) -> Tensor:
        x = torch.cat([self.user_preference.weight, self.feature_projection(self.features)])  # (U+I, d)
        return self.convolve(F.normalize(x, dim=1), id_embedding, aggregate)

    def new_items(self, raw_features: Tensor) -> Tensor:
        """Items outside the graph: only a self-loop (so aggregation is the identity) and no ID embedding.

        Shapes: (N, F_m) -> (N, d).
        """
        x = F.normalize(self.feature_projection(self.scaler({self.modality: raw_features})), dim=1)
        return self.convolve(x, torch.zeros_like(x), lambda h: h)

    def convolve(self, x: Tensor, id_embedding: Tensor, aggregate: Callable[[Tensor], Tensor]) -> Tensor:
        for layer in self.layers:
            x = layer(x, id_embedding, aggregate)
        return x


@register_model(
    "mmgcn",
    config=MMGCNConfig,
    description="MMGCN: one graph convolution per modality over user preferences and item features",
    uses_content=True,
    training_defaults={"learning_rate": 5e-3},
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class MMGCN(Recommender[MMGCNConfig]):
    r"""A graph convolution per modality on the user-item graph, fused into one dot-product score.

    In modality :math:`m`, layer 0 holds a learned preference vector :math:`\mathbf u_m` per user and the
    item's projected features :math:`P_m \mathbf f_{i,m}` per item, each row scaled to unit length (as in the
    authors' code): :math:`X_m^{(0)} = [\mathbf U_m ; \mathbf F_m P_m]`. Each of the L layers aggregates the
    neighbourhood on :math:`\tilde A = A + I` (GCN's rule :math:`H^{(l+1)} = \sigma(\tilde D^{-1/2}\tilde A
    \tilde D^{-1/2} H^{(l)} W^{(l)})`, or the mean :math:`\tilde D^{-1}\tilde A`) and combines it with the
    node's own transformed representation and its ID embedding :math:`\mathbf e_{id}`, shared by all
    modalities:

    .. math::
        H_m^{(l)} = \sigma\bigl(\hat A X_m^{(l-1)} W_{1,m}^{(l)}\bigr), \qquad
        \hat X_m^{(l)} = \sigma\bigl(X_m^{(l-1)} W_{2,m}^{(l)} + b_{2,m}^{(l)}\bigr) + E_{id}

        X_m^{(l)} = \sigma\bigl([H_m^{(l)} \Vert \hat X_m^{(l)}] W_{3,m}^{(l)} + b_{3,m}^{(l)}\bigr)
        \ \text{(concat)} \quad\text{or}\quad
        \sigma\bigl(H_m^{(l)} W_{3,m}^{(l)} + b_{3,m}^{(l)} + \hat X_m^{(l)}\bigr)

    with :math:`\sigma` = LeakyReLU and :math:`\hat A` the aggregation. The paper aggregates the neighbours
    only; the self-loop of :math:`\tilde A` also keeps a cold item (no neighbours) from aggregating zeros.
    The rows of :math:`X_m^{(L)}` are the user and item representations :math:`\mathbf u_m, \mathbf i_m`, and

    .. math::
        \hat y_{ui} = \Bigl(\sum_m \mathbf u_m\Bigr)^\top \Bigl(\sum_m \mathbf i_m\Bigr) \ \text{(fusion="sum",
        the paper)} \quad\text{or}\quad \sum_m \mathbf u_m^\top \mathbf i_m \ \text{(fusion="concat")}

    trained with BPR plus :math:`\tfrac{\lambda}{2B}` times the squared norms of the batch's ID embeddings
    and user preference vectors (the paper's :math:`\lambda\lVert\Theta\rVert^2` on every weight is
    ``train.weight_decay``); :math:`\lambda` defaults to 1e-4.
    The layer-0 rows are scaled to unit length, so the penalty on a preference vector changes its raw length
    only, not its direction.

    Additions not in the paper, each switchable:

    - ``output_reg_weight``: :math:`\tfrac{\lambda_o}{2B}` times the squared norms of the batch's fused user
      and item vectors. The layers' weights can scale the regularised ID embeddings and preferences up
      freely, so the paper's penalty alone does not bound the vectors the score uses.
    - ``id_branch``: an ID branch in LightGCN's form, :math:`\bar E_{id} = \frac{1}{L+1}\sum_{l=0}^{L}
      (D^{-1/2} A D^{-1/2})^l E_{id}` (:func:`modalrec.nn.sparse.mean_of_layers`), added to the fused vectors
      (``fusion="sum"``) or appended as one more block (``"concat"``). It gives the score a signed, linear
      collaborative part; the modality branches end in LeakyReLU and are close to non-negative.
    - ``modality_gate`` (needs ``id_branch``): each modality's vectors are multiplied by a learned scalar
      :math:`g_m` that starts at 0 (as ReZero, Bachlechner et al., UAI 2021, does for residual branches), so
      training starts from the ID branch and lets each modality in as far as it lowers the loss.

    Items with no training interaction (cold start) have their ID embedding
    fixed at zero and only their self-loop in :math:`\tilde A`, so their representation comes from their
    features alone. The graph is normalised once and propagated as a sparse matmul
    (:class:`modalrec.nn.gcn.GraphAggregation`).

    Args:
        config: :class:`MMGCNConfig`.
        inputs: sizes, the training interactions (the graph) and ``features`` (at least one modality).

    Shapes: per-modality representations (U+I, d); embeddings (U, d), (I, d) for fusion="sum",
    (U, K·d), (I, K·d) for fusion="concat" with K = M modalities, plus one with the ID branch.
    """

    warm_nodes: Tensor
    adjacency: Tensor

    def __init__(self, config: MMGCNConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        tables = content_tables("mmgcn", config.modalities, inputs.features, scale=False)
        self.modalities = list(tables)
        num_nodes = inputs.num_users + inputs.num_items
        self.aggregate = GraphAggregation(
            inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items, config.aggregation
        )
        warm = torch.cat([torch.ones(inputs.num_users, 1), warm_item_mask(inputs.num_items, inputs.train_items)])
        self.register_buffer("warm_nodes", warm, persistent=False)  # (U+I, 1)
        if config.id_branch:  # D^-1/2 A D^-1/2, LightGCN's matrix: no self-loops
            adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
            self.register_buffer("adjacency", adjacency, persistent=False)
        self.id_embedding = nn.Embedding(num_nodes, config.embedding_dim)
        self.gates = nn.Parameter(torch.zeros(len(tables))) if config.modality_gate else None
        self.branches = nn.ModuleDict(
            {m: ModalityBranch(m, table, inputs.num_users, config) for m, table in tables.items()}
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.id_embedding.weight)
        for branch in self.modality_branches():
            branch.reset_parameters()

    def modality_branches(self) -> list[ModalityBranch]:
        return [cast(ModalityBranch, branch) for branch in self.branches.values()]

    def modality_representations(self) -> dict[str, Tensor]:
        """``{modality: X_m^(L)}``, users in the first U rows. Shapes: (U+I, d) each."""
        id_embedding = self.warm_nodes * self.id_embedding.weight  # cold items: 0
        return self.gated({m: branch(id_embedding, self.aggregate) for m, branch in self.branches.items()})

    def gated(self, vectors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's vectors times its learned gate, when ``modality_gate``."""
        if self.gates is None:
            return vectors
        return {m: gate * vector for gate, (m, vector) in zip(self.gates, vectors.items(), strict=True)}

    def id_representation(self) -> Tensor:
        """The ID branch :math:`\bar E_{id}`, the mean of the ID embeddings over L propagation steps
        (zero for cold items, which have no edges). Shapes: (U+I, d)."""
        return mean_of_layers(self.adjacency, self.warm_nodes * self.id_embedding.weight, self.config.num_layers)

    def representations(self) -> list[Tensor]:
        """What :meth:`fuse` combines: each modality's ``X_m^(L)``, then the ID branch if there is one."""
        modalities = list(self.modality_representations().values())
        return [*modalities, self.id_representation()] if self.config.id_branch else modalities

    def fuse(self, representations: list[Tensor]) -> Tensor:
        """Sum (fusion="sum") or concatenate the modalities' vectors. Shapes: M x (N, d) -> (N, d) or (N, M*d)."""
        if self.config.fusion == "sum":
            return sum_in_order(representations)
        return torch.cat(representations, dim=1)

    def compute_embeddings(self) -> Embeddings:
        fused = self.fuse(self.representations())
        users, items = torch.split(fused, [self.num_users, self.num_items])
        return Embeddings(users, items)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features alone, as a cold catalogue item gets them.

        Shapes: {modality: (N, F_m)} -> (N, d) or (N, M*d), comparable with ``compute_embeddings().items``.
        """
        device = self.id_embedding.weight.device
        vectors = list(self.gated({b.modality: b.new_items(features[b.modality].to(device))
                                   for b in self.modality_branches()}).values())
        if self.config.id_branch:  # no ID embedding and no edges: the ID branch is zero
            vectors.append(torch.zeros_like(vectors[0]))
        return self.fuse(vectors)

    def loss(self, batch: TrainBatch) -> Tensor:
        vectors = self.compute_embeddings()
        user = vectors.users.index_select(0, batch.users)
        positive = vectors.items.index_select(0, batch.positive_items)
        negative = vectors.items.index_select(0, batch.negative_items)
        positive_scores = (user * positive).sum(1)
        negative_scores = (user * negative).sum(1)
        output_reg = l2_penalty(user, positive, negative) if self.config.output_reg_weight > 0 else 0.0
        ids = self.id_embedding.weight
        reg = l2_penalty(
            ids.index_select(0, batch.users),
            ids.index_select(0, self.num_users + batch.positive_items),
            ids.index_select(0, self.num_users + batch.negative_items),
            *(branch.user_preference(batch.users) for branch in self.modality_branches()),
        )
        ranking = bpr_loss(positive_scores, negative_scores)
        return ranking + self.config.reg_weight * reg + self.config.output_reg_weight * output_reg
