"""LENS, modalrec's own model: a Linear closed-form item model Ensembled with a content-Neighbourhood-Smoothed
graph model. Designed here; it combines what worked best on our benchmarks:

- FREEDOM (Zhou & Shen, MM 2023): a frozen item-item kNN graph from content, and a LightGCN backbone;
- contrastive ID-content alignment as in BM3/SLMRec-style self-supervision (InfoNCE, Oord et al. 2018),
  so that cold items, which have content only, land near the warm items they resemble;
- EASE (Steck, WWW 2019): a closed-form item-item model, strong on dense data, mixed in with a learned weight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty, normalized_adjacency, propagate
from modalrec.nn.closed_form import ease_weights
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.knn import knn_graph, weighted_sum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LENSConfig:
    embedding_dim: int = 64  # d, ID and content embeddings
    num_layers: int = 2  # L, LightGCN layers on the user-item graph
    knn_k: int = 10  # neighbours per item in the frozen content graph (0 disables the graph)
    align_weight: float = 0.1  # weight of the InfoNCE alignment between ID and content item embeddings
    temperature: float = 0.2  # tau of the InfoNCE loss
    ease_l2: float = 300.0  # lambda of the closed-form EASE term
    use_closed_form: bool = True  # mix in EASE (skipped automatically above closed_form_max_items)
    closed_form_max_items: int = 20000  # EASE needs an items x items dense inverse
    closed_form_max_cells: int = 200_000_000  # ... and users x items dense user vectors
    reg_weight: float = 1e-4  # L2 on the batch's layer-0 embeddings
    modalities: tuple[str, ...] = ()  # () means every modality of the dataset

    def __post_init__(self) -> None:
        for key in ("embedding_dim", "num_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}", f"must be >= 1, got {getattr(self, key)}")
        if self.knn_k < 0 or self.temperature <= 0 or self.align_weight < 0:
            raise ConfigError("model", "knn_k and align_weight must be >= 0 and temperature > 0")

    search_space = {"align_weight": ("log", 1e-3, 1.0), "ease_l2": ("log", 50.0, 2000.0)}  # noqa: RUF012


@register_model(
    "lens",
    config=LENSConfig,
    description="LENS (ours): content-kNN-smoothed LightGCN + ID/content alignment + closed-form EASE, mixed",
    uses_content=True,
)
class LENS(Recommender):
    r"""Graph model over ID and content embeddings, plus a closed-form item-item term.

    Item input embeddings combine the item's ID embedding (zero for cold items) with its content, smoothed
    over a frozen content kNN graph :math:`S` (FREEDOM's, binary and symmetric-normalised per modality, the
    modalities averaged):

    .. math::
        \mathbf c_i = \sum_m \pi_m \mathbf W_m \mathbf f_i^m, \quad
        \tilde{\mathbf C} = S\,\mathbf C, \quad
        \mathbf h^{(0)}_i = w_i\,\mathbf e_i + \tilde{\mathbf c}_i, \quad \mathbf h^{(0)}_u = \mathbf e_u

    with :math:`\pi = \mathrm{softmax}(\boldsymbol\alpha)` learned and :math:`w_i` 1 for warm items, 0 for
    cold ones. LightGCN layers on the normalised user-item graph give :math:`\mathbf g = \frac{1}{L+1}
    \sum_l \mathbf H^{(l)}`. The score adds EASE's closed-form prediction with a learned weight :math:`\beta`:

    .. math::
        \hat y_{ui} = \mathbf g_u^\top \mathbf g_i + \beta\, \mathbf x_u^\top B_{:,i}, \qquad
        B = I - P\,\mathrm{diag}(1/\mathrm{diag}\,P),\ P = (X^\top X + \lambda I)^{-1}

    and the loss is BPR plus :math:`\lambda_{reg}` L2 plus an InfoNCE term aligning each batch item's ID
    embedding with its smoothed content embedding:
    :math:`-\log \frac{\exp(\cos(\mathbf e_i, \tilde{\mathbf c}_i)/\tau)}{\sum_j \exp(\cos(\mathbf e_i, \tilde{\mathbf c}_j)/\tau)}`.

    The score is the dot product of :math:`[\mathbf g_u, \beta \mathbf x_u]` and :math:`[\mathbf g_i, B_{:,i}]`,
    d + I wide, so ranking and serving stay exact. EASE needs an I x I inverse and these U x (d + I) vectors,
    so it is switched off (with a warning) above ``closed_form_max_items`` items or ``closed_form_max_cells``
    users x items; LENS is then the graph part alone. New items cannot be embedded from content alone:
    their place in the content kNN graph would change their neighbours' normalisation.

    Shapes: adjacency (U+I, U+I); content graph (I, I) sparse; EASE weights (I, I) dense.
    """

    adjacency: Tensor
    item_graph: Tensor
    warm: Tensor
    content: Tensor
    history: Tensor
    ease: Tensor

    def __init__(self, config: LENSConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("lens", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.scaler = ContentScaler(raw)
        self.content_dims = [table.shape[1] for table in raw.values()]
        num_nodes = inputs.num_users + inputs.num_items
        self.embedding = nn.Embedding(num_nodes, config.embedding_dim)
        self.projections = nn.ModuleList(nn.Linear(t.shape[1], config.embedding_dim) for t in raw.values())
        self.modality_logits = nn.Parameter(torch.zeros(len(raw)))
        self.closed_form_weight = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("content", self.scaler(raw), persistent=False)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        adjacency = normalized_adjacency(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("item_graph", self._content_graph(raw), persistent=False)
        self._register_closed_form(inputs)
        self.reset_parameters()

    def _content_graph(self, raw: dict[str, Tensor]) -> Tensor:
        if self.config.knn_k == 0:
            return torch.eye(self.num_items).to_sparse_csr()
        graphs = [knn_graph(table, self.config.knn_k, name=m) for m, table in raw.items()]
        return weighted_sum(graphs, [1.0 / len(graphs)] * len(graphs))

    def _register_closed_form(self, inputs: ModelInputs) -> None:
        fits = (inputs.num_items <= self.config.closed_form_max_items
                and inputs.num_users * inputs.num_items <= self.config.closed_form_max_cells)
        enabled = self.config.use_closed_form and fits
        if self.config.use_closed_form and not fits:
            log.warning("lens: %d users x %d items exceed the closed-form limits; the EASE term is off",
                        inputs.num_users, inputs.num_items)
        self.uses_closed_form = enabled
        if enabled:
            ease = ease_weights(inputs.train_users, inputs.train_items, inputs.num_items, self.config.ease_l2)
            history = torch.zeros(inputs.num_users, inputs.num_items)
            history[inputs.train_users, inputs.train_items] = 1.0
        else:
            ease, history = torch.zeros(0, 0), torch.zeros(0, 0)
        self.register_buffer("ease", ease, persistent=False)
        self.register_buffer("history", history.to_sparse_csr(), persistent=False)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.embedding.weight)
        for projection in self.projections.modules():
            if isinstance(projection, nn.Linear):
                nn.init.xavier_uniform_(projection.weight)
                nn.init.zeros_(projection.bias)

    # -- representations --------------------------------------------------------------------------

    def smoothed_content(self) -> Tensor:
        """(I, d) content embeddings, modality-weighted, smoothed over the frozen item graph."""
        blocks = torch.split(self.content, self.content_dims, dim=1)
        weights = torch.softmax(self.modality_logits, 0)
        mixed = torch.stack([w * p(b) for w, p, b in zip(weights, self.projections, blocks, strict=True)]).sum(0)
        return propagate(self.item_graph, mixed)

    def layer_zero(self) -> Tensor:
        users, items = torch.split(self.embedding.weight, [self.num_users, self.num_items])
        return torch.cat([users, self.warm * items + self.smoothed_content()])

    def graph_embeddings(self) -> Embeddings:
        """:math:`\mathbf g`: the LightGCN layer average over ID + smoothed content inputs. Shapes: (U, d), (I, d)."""
        layer = self.layer_zero()
        total = layer
        for _ in range(self.config.num_layers):
            layer = propagate(self.adjacency, layer)
            total = total + layer
        users, items = torch.split(total / (self.config.num_layers + 1), [self.num_users, self.num_items])
        return Embeddings(users, items)

    def compute_embeddings(self) -> Embeddings:
        """Exact dot-product vectors: ``[g_u, beta x_u]`` and ``[g_i, B[:, i]]`` (d + I wide with EASE on)."""
        graph = self.graph_embeddings()
        if not self.uses_closed_form:
            return graph
        history = self.closed_form_weight * self.history.to_dense()
        return Embeddings(torch.cat([graph.users, history], 1), torch.cat([graph.items, self.ease.T], 1))

    def closed_form_pair_scores(self, users: Tensor, items: Tensor) -> Tensor:
        """:math:`\beta\,X_u B_{:,i}` for aligned pairs, summing only over each user's history. Shapes: (B,) -> (B,)."""
        rows = torch.index_select(self.history.to_sparse_coo(), 0, users).coalesce()
        batch_row, history_item = rows.indices()
        contributions = self.ease[history_item, items[batch_row]]
        totals = torch.zeros(len(users), device=users.device).index_add_(0, batch_row, contributions)
        return self.closed_form_weight * totals

    # -- training ---------------------------------------------------------------------------------

    def loss(self, batch: TrainBatch) -> Tensor:
        vectors = self.graph_embeddings()
        user = vectors.users[batch.users]
        positive = (user * vectors.items[batch.positive_items]).sum(1)
        negative = (user * vectors.items[batch.negative_items]).sum(1)
        if self.uses_closed_form:
            positive = positive + self.closed_form_pair_scores(batch.users, batch.positive_items)
            negative = negative + self.closed_form_pair_scores(batch.users, batch.negative_items)
        ego = self.embedding.weight
        reg = l2_penalty(ego[batch.users], ego[self.num_users + batch.positive_items],
                         ego[self.num_users + batch.negative_items])
        loss = bpr_loss(positive, negative) + self.config.reg_weight * reg
        if self.config.align_weight > 0:
            loss = loss + self.config.align_weight * self.alignment_loss(batch.positive_items)
        return loss

    def alignment_loss(self, items: Tensor) -> Tensor:
        """InfoNCE between the ID and smoothed-content embeddings of the batch's distinct items."""
        distinct = torch.unique(items)
        ids = F.normalize(self.embedding.weight[self.num_users + distinct], dim=1)
        content = F.normalize(self.smoothed_content()[distinct], dim=1)
        logits = ids @ content.T / self.config.temperature  # (N, N)
        return F.cross_entropy(logits, torch.arange(len(distinct), device=logits.device))
