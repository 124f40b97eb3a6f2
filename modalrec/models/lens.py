"""LENS, modalrec's own model: a Linear closed-form item model (EASE) whose weights are pulled towards a
content Neighbourhood graph (the frozen kNN graph of FREEDOM), Solved once, with no gradient training.

Designed here from two strong, cheap ingredients: the closed-form EASE (Steck, WWW 2019), a hard baseline
for trained graph models, and FREEDOM's frozen content kNN graph (Zhou & Shen, MM 2023), a cheap reliable
way to bring content in (the benchmark pages compare them). LENS solves both in one closed form, so content also reaches
cold items (which have no interactions and hence zero EASE columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from modalrec.config import check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.models.scoring import ScoreFn
from modalrec.nn.closed_form import ease_weights
from modalrec.nn.content import content_tables
from modalrec.nn.graph import unique_pairs
from modalrec.nn.knn import knn_graph, weighted_sum


@dataclass(frozen=True)
class LENSConfig:
    l2_scale: float = 6.0  # lambda = l2_scale x the mean number of training interactions per item
    content_share: float = 0.5  # mu = content_share x lambda, the pull towards the content graph (0: EASE)
    knn_k: int = 20  # neighbours per item in each modality's content graph
    modality_weights: dict[str, float] = field(default_factory=dict)  # per-modality share; {} = text 0.8
    modalities: tuple[str, ...] = ()  # () means every modality of the dataset
    max_items: int = 20000  # the closed form inverts an items x items matrix
    max_cells: int = 200_000_000  # ... and serves users x items history vectors

    def __post_init__(self) -> None:
        check_range("model.l2_scale", self.l2_scale, low=0, low_open=True)
        check_range("model.content_share", self.content_share, low=0)
        check_range("model.knn_k", self.knn_k, low=1)

    search_space = {"l2_scale": ("log", 1.0, 40.0), "content_share": ("float", 0.0, 1.5)}  # noqa: RUF012


@register_model(
    "lens",
    config=LENSConfig,
    description="LENS (ours): closed-form EASE pulled towards a content kNN graph; no training, cold-start aware",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, closed_form=True, search_space=True),
)
class LENS(Recommender[LENSConfig]):
    r"""A closed-form item-item model with a content prior.

    .. math::
        B = \arg\min_{\mathrm{diag}(B) = 0} \lVert X - XB\rVert_F^2 + \lambda \lVert B\rVert_F^2
            - 2\mu\,\mathrm{tr}(B^\top S), \qquad \hat y_{ui} = \mathbf x_u^\top B_{:,i}

    where :math:`X` is the binary training matrix and :math:`S = \sum_m \pi_m S_m` mixes per-modality
    row-normalised kNN graphs of the item features. :math:`\lambda` scales with the data
    (``l2_scale`` x the mean item degree) and :math:`\mu = ` ``content_share`` :math:`\lambda`. Solution:
    :math:`P = (X^\top X + \lambda I)^{-1}`, :math:`C = P (X^\top X + \mu S)`,
    :math:`B = C - P\,\mathrm{diag}(\mathrm{diag}\,C / \mathrm{diag}\,P)`.

    Nothing is learned by gradient: the Trainer evaluates it once (it has no trainable parameter). The
    score is the dot product of the user's history row :math:`\mathbf x_u` and the column :math:`B_{:,i}`.
    The inverse is I x I, so the model refuses catalogues above ``max_items`` (use FREEDOM there).

    Shapes: ease (I, I) dense; history (U, I) sparse.
    """

    ease: Tensor
    history: Tensor

    def __init__(self, config: LENSConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        if inputs.num_items > config.max_items or inputs.num_users * inputs.num_items > config.max_cells:
            raise ConfigError(
                "model.max_items",
                f"lens solves an items x items inverse; {inputs.num_users} users x {inputs.num_items} items exceed "
                f"max_items={config.max_items} / max_cells={config.max_cells} (use freedom or lightgcn)",
            )
        tables = content_tables("lens", config.modalities, inputs.features, scale=False)
        self.modalities = list(tables)
        interactions = len(unique_pairs(inputs.train_users, inputs.train_items, inputs.num_items)[0])
        self.l2 = config.l2_scale * max(interactions / inputs.num_items, 1e-3)  # lambda
        prior = self._content_graph(tables) if config.content_share > 0 else None
        weights = ease_weights(inputs.train_users, inputs.train_items, inputs.num_items, self.l2,
                               prior=prior, prior_weight=config.content_share * self.l2)
        history = torch.zeros(inputs.num_users, inputs.num_items)
        history[inputs.train_users, inputs.train_items] = 1.0
        self.register_buffer("ease", weights, persistent=False)
        self.register_buffer("history", history.to_sparse_csr(), persistent=False)

    def _content_graph(self, tables: dict[str, Tensor]) -> Tensor:
        requested = self.config.modality_weights
        if requested and sorted(requested) != sorted(tables):
            raise ConfigError("model.modality_weights", f"must name exactly the modalities {sorted(tables)}")
        if requested:
            shares = [requested[m] for m in tables]
        elif "text" in tables and len(tables) > 1:  # text 0.8, the others share 0.2 (FREEDOM favours text too)
            shares = [0.8 if m == "text" else 0.2 / (len(tables) - 1) for m in tables]
        else:
            shares = [1.0] * len(tables)
        total = sum(shares)
        graphs = [knn_graph(t, self.config.knn_k, normalization="row", name=m) for m, t in tables.items()]
        return weighted_sum(graphs, [s / total for s in shares])

    def loss(self, batch: TrainBatch) -> Tensor:
        raise ConfigError("model", "lens is solved in closed form and has no training loss")

    def score(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        rows = torch.index_select(self.history.to_sparse_coo(), 0, users)
        columns = self.ease if items is None else self.ease[:, items]
        return torch.sparse.mm(rows, columns)

    def compute_embeddings(self) -> Embeddings:
        return Embeddings(self.history.to_dense(), self.ease.T)

    def ranking_scorer(self) -> ScoreFn:
        """``score``: the sparse history times the item-item weights, cheaper than the dense user vectors."""
        return self.score
