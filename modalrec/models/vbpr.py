"""VBPR. He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback", AAAI 2016.
https://arxiv.org/abs/1510.01784
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modalrec.config import check_at_least
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.init import check_id_init, start_from_svd
from modalrec.nn.precision import TrainingTables, check_precision, project


@dataclass(frozen=True)
class VBPRConfig:
    embedding_dim: int = 64  # K, the ID factor size (gamma_u, gamma_i)
    content_dim: int = 64  # K', the size of the projected content factor (theta_u, E f_i)
    reg_weight: float = 1e-2  # lambda on the batch's user vectors and full item vectors (ID, content, bias)
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality to zero mean, unit average norm before projecting
    id_init: str = "xavier"  # random; "svd": gamma_u, gamma_i start from the training matrix's truncated SVD
    svd_norm: float = 0.5  # with id_init="svd": the mean norm of those starting rows
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, content_dim=self.content_dim)
        check_id_init(self.id_init, self.svd_norm)
        check_precision(self.train_precision)


@register_model(
    "vbpr",
    config=VBPRConfig,
    description="VBPR: BPR-MF plus a learned projection of the item's content features (any modalities)",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class VBPR(Recommender[VBPRConfig]):
    r"""Matrix factorisation whose item side also reads content features.

    .. math::
        \hat y_{ui} = \boldsymbol\gamma_u^\top\boldsymbol\gamma_i + \boldsymbol\theta_u^\top (\mathbf E\,\mathbf f_i)
        + \beta_i + \boldsymbol\beta'^\top \mathbf f_i

    where :math:`\mathbf f_i` concatenates the item's modality features (the paper's visual feature, here
    any number of modalities), :math:`\mathbf E` is a learned linear projection, :math:`\beta_i` an item bias
    and :math:`\boldsymbol\beta'` a content bias. The global and user biases do not change a user's ranking
    and are omitted. Items with no training interaction (cold start) have no usable
    :math:`\boldsymbol\gamma_i, \beta_i`: those are fixed at zero, so such items are scored from content alone.
    The score stays a dot product of
    :math:`[\boldsymbol\gamma_u, \boldsymbol\theta_u, 1]` and
    :math:`[\boldsymbol\gamma_i, \mathbf E\mathbf f_i, \beta_i + \boldsymbol\beta'^\top\mathbf f_i]`.

    With ``id_init="svd"`` the ID factors :math:`\boldsymbol\gamma` start from the truncated SVD of the
    training matrix (:func:`modalrec.nn.init.svd_factors`) instead of random values, so training starts from
    a ranking of the training data and BPR refines it. It stays an option because a start fitted to few
    observed pairs can hold the model back on sparse data (measurements: docs/benchmarks/notes.md).

    The content projection is a large part of a training step. With ``train_precision="auto"`` the step multiplies
    the content table and :math:`\mathbf E, \boldsymbol\beta'` in bfloat16 where the device does so natively
    (:mod:`modalrec.nn.precision`); parameters, optimizer and all scores for evaluation and serving stay
    float32.

    Args:
        config: :class:`VBPRConfig`.
        inputs: sizes and ``features`` (at least one modality).

    Shapes: content (I, F) with F the summed modality dims; user vectors (U, K + K' + 1).
    """

    content: Tensor
    warm: Tensor

    def __init__(self, config: VBPRConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("vbpr", config.modalities, inputs.features, scale=False)
        self.modalities = list(raw)
        self.scaler = ContentScaler(raw, scale=config.standardize)
        self.register_buffer("content", self.scaler(raw), persistent=False)  # (I, F)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        self.user_id = nn.Embedding(inputs.num_users, config.embedding_dim)
        self.item_id = nn.Embedding(inputs.num_items, config.embedding_dim)
        self.user_content = nn.Embedding(inputs.num_users, config.content_dim)
        self.item_bias = nn.Embedding(inputs.num_items, 1)
        self.content_projection = nn.Linear(self.content.shape[1], config.content_dim, bias=False)  # E
        self.content_bias = nn.Linear(self.content.shape[1], 1, bias=False)  # beta'
        self.training_tables = TrainingTables(config.train_precision)
        self.reset_parameters()
        if config.id_init == "svd":
            start_from_svd(self.user_id, self.item_id, inputs.train_users, inputs.train_items, config.svd_norm)

    def reset_parameters(self) -> None:
        for table in (self.user_id, self.item_id, self.user_content):
            nn.init.xavier_uniform_(table.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.xavier_uniform_(self.content_projection.weight)
        nn.init.zeros_(self.content_bias.weight)

    def item_vectors(self) -> Tensor:
        return self._item_rows(self.content, self.warm, self.item_id.weight, self.item_bias.weight)

    def _item_rows(self, content: Tensor, warm: Tensor, item_id: Tensor, item_bias: Tensor) -> Tensor:
        """Item vectors from matching rows of the content table, warm mask, ID factors and item biases.

        Shapes: (N, F), (N, 1), (N, K), (N, 1) -> (N, K + K' + 1).
        """
        projected = project(content, self.content_projection)  # (N, K')
        bias = warm * item_bias + project(content, self.content_bias)  # (N, 1)
        return torch.cat([warm * item_id, projected, bias], dim=1)

    def _batch_item_vectors(self, positive_items: Tensor, negative_items: Tensor) -> tuple[Tensor, Tensor]:
        """The rows of ``item_vectors()`` for the batch's positive and negative items.

        Projecting the content table is most of a step's work, done in the training precision. When the batch
        draws fewer items than the catalogue holds, only its distinct items are projected: the same rows, at a
        fraction of the product on a large catalogue. Otherwise most items are drawn anyway, and one product
        over the whole (contiguous) table is cheaper than gathering the rows first.
        """
        content = self.training_tables(self.content)
        drawn = torch.cat([positive_items, negative_items])
        if len(drawn) >= self.num_items:
            vectors = self._item_rows(content, self.warm, self.item_id.weight, self.item_bias.weight)
            return vectors.index_select(0, positive_items), vectors.index_select(0, negative_items)
        items, rows = torch.unique(drawn, return_inverse=True)
        vectors = self._item_rows(
            content.index_select(0, items), self.warm.index_select(0, items),
            self.item_id.weight.index_select(0, items), self.item_bias.weight.index_select(0, items),
        ).index_select(0, rows)
        return vectors[: len(positive_items)], vectors[len(positive_items) :]

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features alone (no ID factor, no item bias).

        Shapes: {modality: (N, F_m)} -> (N, K + K' + 1), comparable with ``compute_embeddings().items``.
        """
        content = self.scaler({m: features[m].to(self.content.device) for m in self.modalities})
        id_part = torch.zeros(content.shape[0], self.config.embedding_dim, device=content.device)
        return torch.cat([id_part, self.content_projection(content), self.content_bias(content)], dim=1)

    def user_vectors(self) -> Tensor:
        ones = torch.ones(self.num_users, 1, device=self.user_id.weight.device)
        return torch.cat([self.user_id.weight, self.user_content.weight, ones], dim=1)

    def compute_embeddings(self) -> Embeddings:
        return Embeddings(self.user_vectors(), self.item_vectors())

    def loss(self, batch: TrainBatch) -> Tensor:
        positive, negative = self._batch_item_vectors(batch.positive_items, batch.negative_items)
        ones = torch.ones(len(batch.users), 1, device=self.content.device)
        user = torch.cat([self.user_id(batch.users), self.user_content(batch.users), ones], 1)
        ranking = bpr_loss((user * positive).sum(1), (user * negative).sum(1))
        return ranking + self.config.reg_weight * l2_penalty(user[:, :-1], positive, negative)
