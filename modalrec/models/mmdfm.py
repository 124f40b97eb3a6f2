"""MMDFM: a multimodal deep factorization machine for top-K ranking.

Built on Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR Prediction", IJCAI 2017
(https://arxiv.org/abs/1703.04247) and Rendle, "Factorization Machines", ICDM 2010
(https://doi.org/10.1109/ICDM.2010.127). The modality fields are extracted by small networks, and the FM part
is kept a dot product so that full ranking and nearest-neighbour serving stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, NotSupported, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.fusion import (
    EARLY_COMBINES,
    FUSION_MODES,
    ModalityProjection,
    PairMLP,
    check_choice,
    fusion_blocks,
    make_fusion,
)


LOW_LEARNING_RATE_MODES = ("early", "hybrid")  # the modes with the summed early block


@dataclass(frozen=True)
class MMDFMConfig:
    """MMDFM's settings; the class docstring says where the defaults depart from a textbook FM and why."""

    embedding_dim: int = 64  # k, the latent size of every field (user id, item id, each modality)
    fusion: str = "early"  # early (plain FM) | late | hybrid | attention: how the item fields meet the user
    combine: str = "sum"  # early and hybrid: sum (the exact FM cross terms) | concat (concatenate, then an MLP)
    feature_hidden_dim: int = 0  # hidden width of each modality's extraction network; 0 = linear
    attention_dim: int = 32  # hidden width of the attention MLP (fusion = attention)
    bounded_attention: bool = True  # attention logits: shared c_s plus tanh of the user's term (False: unbounded)
    reg_weight: float = 1e-2  # lambda, L2 on the batch's user fields, item fields and item biases
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality to zero mean, unit average norm before extraction
    content_dropout: float = 0.0  # dropout on the scaled content features while training
    reg_weighted_user: bool = True  # L2 on the user vector with the fusion weights folded in (what the score sees)
    item_interactions: bool = False  # FM's item-item field interactions, part of the item bias c_i
    rerank_with_deep: bool = False  # add DeepFM's MLP; then score() = FM + MLP, which no longer factors
    deep_layers: tuple[int, ...] = (64, 32)  # hidden widths of the deep MLP

    def __post_init__(self) -> None:
        check_choice("model.fusion", self.fusion, FUSION_MODES)
        check_choice("model.combine", self.combine, EARLY_COMBINES)
        check_at_least("model", 1, embedding_dim=self.embedding_dim, attention_dim=self.attention_dim)
        check_range("model.feature_hidden_dim", self.feature_hidden_dim, low=0)
        check_range("model.content_dropout", self.content_dropout, low=0, high=1, high_open=True)
        if not self.deep_layers or min(self.deep_layers) < 1:
            raise ConfigError("model.deep_layers", f"expected at least one positive width, got {self.deep_layers}")


def learning_rate_for_fusion(config: MMDFMConfig) -> dict[str, float]:
    """The learning rate per fusion mode: 0.0005 for early and hybrid fusion, whose summed fields take larger
    steps per update, and the Trainer's 0.001 for late and attention fusion."""
    return {"learning_rate": 5e-4} if config.fusion in LOW_LEARNING_RATE_MODES else {}


def capabilities_for_fusion(config: MMDFMConfig) -> Capabilities:
    """The FM part factors unless the deep MLP is added; only early fusion has no per-source weights."""
    factors = not config.rerank_with_deep
    return Capabilities(dot_product=factors, cold_items=True, new_items=factors,
                        modality_weights=config.fusion != "early")


@register_model(
    "mmdfm",
    config=MMDFMConfig,
    description="MMDFM: factorization machine over user, item and modality fields (DeepFM-style), four fusion modes",
    uses_content=True,
    training_defaults=learning_rate_for_fusion,
    capabilities=capabilities_for_fusion,
)
class MMDFM(Recommender[MMDFMConfig]):
    r"""A factorization machine whose fields are the user id, the item id and one dense field per modality.

    Each modality m is turned into a field vector :math:`\mathbf v_m(i) = g_m(\mathbf f_{im})` by a small
    network (the deep feature extraction step); the item id field is :math:`\mathbf v_{id}(i)`. FM (Rendle,
    2010) with fields :math:`\mathcal F = \{u, id, m_1, \dots, m_M\}` and DeepFM (Guo et al., 2017) score

    .. math::
        \hat y_{FM} = \sum_f \mathbf w_f^\top \mathbf x_f + \sum_{f<g} \langle \mathbf v_f, \mathbf v_g \rangle,
        \qquad \hat y_{DeepFM} = \hat y_{FM} + \mathrm{MLP}([\mathbf v_u; \mathbf v_{id}; \mathbf v_{m_1}; \dots])

    The only user field is :math:`\mathbf v_u`, so the pairs split into user-item cross terms and item-item terms:

    .. math::
        \sum_{f<g} \langle \mathbf v_f, \mathbf v_g \rangle
        = \Big\langle \mathbf v_u, \sum_{f \in \mathcal I} \mathbf v_f(i) \Big\rangle
        + \underbrace{\tfrac12 \Big(\big\lVert \textstyle\sum_{f\in\mathcal I} \mathbf v_f(i)\big\rVert^2
        - \textstyle\sum_{f\in\mathcal I} \lVert \mathbf v_f(i) \rVert^2\Big)}_{\text{item-item}}

    with :math:`\mathcal I` the item fields. The item-item terms and the first-order item terms
    (:math:`b_i + \boldsymbol\beta^\top \mathbf f_i`) form an item bias :math:`c_i`, and the user's first-order
    term does not change a ranking, so :math:`\hat y_{FM} = [\mathbf v_u, 1]^\top [\sum_f \mathbf v_f(i), c_i]`.
    ``item_interactions=False`` leaves the item-item terms out of :math:`c_i`.

    ``fusion`` chooses how the item fields meet the user (see :mod:`modalrec.nn.fusion`); every mode factors:

    - ``early``: the fused item vector, :math:`\sum_f \mathbf v_f(i)` (``combine="sum"``, exactly FM) or an MLP
      over their concatenation (``"concat"``);
    - ``late``: one user vector per item field (field-aware, as in FFM), scores weighted by learned global
      weights, :math:`S\sum_f w_f \langle \mathbf v_u^{(f)}, \mathbf v_f(i)\rangle` with :math:`\sum_f w_f = 1`;
    - ``hybrid``: the early block plus the late blocks;
    - ``attention``: like late, with weights :math:`a_{uf}` from an attention MLP over the user's fields.

    The deep MLP sees one (user, item) pair at a time and cannot factor. It exists only with
    ``rerank_with_deep=True``: training then adds a BPR term on :math:`\hat y_{FM} + \mathrm{MLP}`, :meth:`score`
    returns that sum for every item (exact, in item chunks), :meth:`rerank` scores candidate lists, and
    :meth:`factorized_embeddings` still gives the FM part for retrieval. Cold items (no training interaction)
    have :math:`\mathbf v_{id}(i)` and :math:`b_i` fixed at zero, so they are scored from content alone.

    Training minimises BPR plus :math:`\tfrac{\lambda}{2B}` times the squared norms of the batch's user
    vectors, item fields and item biases. The defaults differ from a textbook FM in three ways:

    - ``reg_weighted_user``: the penalty is on the user vector with the fusion weights folded in, the vector
      the score actually uses. On the raw user fields, a learned weight scales its block by up to S for free,
      and the model overfits.
    - ``feature_hidden_dim=0``: linear extraction networks, as VBPR's projection.
    - ``item_interactions=False``: the item-item terms only add to the item bias and cannot personalise.

    Args:
        config: :class:`MMDFMConfig`.
        inputs: sizes, the training items (to find cold items) and ``features`` (at least one modality).

    Shapes: item fields (I, S, k) with S = 1 + M; user fields (U, K*k) with K the fusion's blocks;
    embeddings (U, K*k + 1), (I, K*k + 1).
    """

    content: Tensor
    warm: Tensor

    def __init__(self, config: MMDFMConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("mmdfm", config.modalities, inputs.features, scale=False)
        self.modality_names = ["id", *raw]
        self.modality_dims = [table.shape[1] for table in raw.values()]
        self.scaler = ContentScaler(raw, scale=config.standardize)
        self.register_buffer("content", self.scaler(raw), persistent=False)  # (I, F)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        dim, num_sources = config.embedding_dim, len(self.modality_names)
        self.num_blocks = fusion_blocks(config.fusion, num_sources)
        self.fusion = make_fusion(config.fusion, num_sources=num_sources, dim=dim, query_dim=self.num_blocks * dim,
                                  combine=config.combine, attention_dim=config.attention_dim,
                                  bounded_attention=config.bounded_attention)  # query: user fields
        self.user_fields = nn.Embedding(inputs.num_users, self.num_blocks * dim)
        self.item_id = nn.Embedding(inputs.num_items, dim)
        self.item_bias = nn.Embedding(inputs.num_items, 1)  # b_i
        self.content_first_order = nn.Linear(self.content.shape[1], 1, bias=False)  # beta
        self.feature_extraction = ModalityProjection(self.modality_dims, dim, config.feature_hidden_dim)
        self.deep = (
            PairMLP(self.num_blocks * dim, num_sources * dim, config.deep_layers) if config.rerank_with_deep else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_fields.weight)
        nn.init.xavier_uniform_(self.item_id.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.content_first_order.weight)

    def fields_of(self, content: Tensor, id_field: Tensor) -> Tensor:
        """Item fields from scaled content and the ID field. Shapes: (N, F), (N, k) -> (N, S, k)."""
        extracted = self.feature_extraction(torch.split(content, self.modality_dims, dim=1))  # (N, M, k)
        return torch.cat([id_field.unsqueeze(1), extracted], dim=1)

    def catalogue_content(self) -> Tensor:
        """The scaled content, with ``content_dropout`` applied while training. Shapes: (I, F)."""
        return F.dropout(self.content, self.config.content_dropout, self.training)

    def item_fields(self, content: Tensor | None = None) -> Tensor:
        """The catalogue's fields [id, modality_1, ...], the ID zeroed for cold items. Shapes: (I, S, k)."""
        content = self.content if content is None else content
        return self.fields_of(content, self.warm * self.item_id.weight)

    def bias_of(self, fields: Tensor, content: Tensor, id_bias: Tensor) -> Tensor:
        """First-order item terms plus the item-item FM interactions. Shapes: (N, S, k), (N, F), (N, 1) -> (N, 1)."""
        first_order = id_bias + self.content_first_order(content)
        if not self.config.item_interactions:
            return first_order
        return first_order + 0.5 * (fields.sum(1).pow(2) - fields.pow(2).sum(1)).sum(1, keepdim=True)

    def item_bias_column(self, fields: Tensor, content: Tensor | None = None) -> Tensor:
        """The catalogue's item bias column (cold items without b_i). Shapes: (I, S, k), (I, F) -> (I, 1)."""
        content = self.content if content is None else content
        return self.bias_of(fields, content, self.warm * self.item_bias.weight)

    def item_side(self) -> tuple[Tensor, Tensor]:
        """Item fields (I, S, k) and item vectors (I, K*k + 1) of the factorised score."""
        content = self.catalogue_content()
        fields = self.item_fields(content)
        return fields, torch.cat([self.fusion.item_vectors(fields), self.item_bias_column(fields, content)], dim=1)

    def user_vectors(self, user_fields: Tensor) -> Tensor:
        """(B, K*k) user fields -> (B, K*k + 1) user vectors, fusion weights folded in, 1 for the item bias."""
        blocks = user_fields.view(len(user_fields), self.num_blocks, -1)  # (B, K, k)
        ones = user_fields.new_ones(len(user_fields), 1)
        return torch.cat([self.fusion.user_vectors(blocks, user_fields), ones], dim=1)

    def factorized_embeddings(self) -> Embeddings:
        """The FM part as a dot product (the whole score unless ``rerank_with_deep``): use it for retrieval."""
        _, item_vectors = self.item_side()
        return Embeddings(self.user_vectors(self.user_fields.weight), item_vectors)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features alone (no ID field, no b_i), comparable with
        ``embeddings().items``; only where the score factors (no deep MLP).

        Shapes: {modality: (N, F_m)} -> (N, K*k + 1).
        """
        if self.deep is not None:
            raise NotSupported("mmdfm with rerank_with_deep=true scores new items with an MLP, not vectors")
        content = self.scaler({m: features[m].to(self.content.device) for m in self.modality_names[1:]})
        no_id = content.new_zeros(len(content), self.config.embedding_dim)
        fields = self.fields_of(content, no_id)
        return torch.cat([self.fusion.item_vectors(fields), self.bias_of(fields, content, no_id[:, :1])], dim=1)

    def compute_embeddings(self) -> Embeddings:
        if self.deep is not None:
            raise NotSupported("mmdfm with rerank_with_deep=true adds an MLP that is not a dot product; "
                               "use factorized_embeddings() to retrieve and rerank() to order the candidates")
        return self.factorized_embeddings()

    def score(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        if self.deep is None:
            return super().score(users, items)
        fields, item_vectors = self.item_side()
        if items is not None:
            fields, item_vectors = fields[items], item_vectors[items]
        user_fields = self.user_fields(users)
        return self.user_vectors(user_fields) @ item_vectors.T + self.deep.score_all(user_fields, fields.flatten(1))

    def rerank(self, users: Tensor, candidates: Tensor) -> Tensor:
        """Scores of each user's candidate items: FM, plus the deep MLP when ``rerank_with_deep``.

        Shapes: users (B,), candidates (B, C) item indices -> (B, C).
        """
        fields, item_vectors = self.item_side()
        user_fields = self.user_fields(users)  # (B, K*k)
        scores = torch.einsum("bd,bcd->bc", self.user_vectors(user_fields), item_vectors[candidates])
        if self.deep is not None:
            expanded = user_fields.unsqueeze(1).expand(-1, candidates.shape[1], -1)  # (B, C, K*k)
            scores = scores + self.deep(expanded, fields[candidates].flatten(2))
        return scores

    def modality_weights(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        """Score-level weight of each item field for each user and item, ordered as ``modality_names``.

        Available for ``fusion`` late, hybrid (the late blocks) and attention; each row sums to 1.

        Shapes: users (B,), items (N,) or None for all -> (B, N, 1 + M).
        """
        fields = self.item_fields() if items is None else self.item_fields()[items]
        weights = self.fusion.source_weights(self.user_fields(users), fields)
        if weights is None:
            raise NotSupported(f"mmdfm with fusion='{self.config.fusion}' has no modality weights; "
                               "use fusion late, hybrid or attention")
        return weights

    def loss(self, batch: TrainBatch) -> Tensor:
        fields, item_vectors = self.item_side()
        user_fields = self.user_fields(batch.users)
        user = self.user_vectors(user_fields)
        positive = (user * item_vectors.index_select(0, batch.positive_items)).sum(1)
        negative = (user * item_vectors.index_select(0, batch.negative_items)).sum(1)
        ranking = bpr_loss(positive, negative)
        if self.deep is not None:
            positive = positive + self.deep(user_fields, fields.index_select(0, batch.positive_items).flatten(1))
            negative = negative + self.deep(user_fields, fields.index_select(0, batch.negative_items).flatten(1))
            ranking = ranking + bpr_loss(positive, negative)
        reg = l2_penalty(user[:, :-1] if self.config.reg_weighted_user else user_fields,
                         fields.index_select(0, batch.positive_items), fields.index_select(0, batch.negative_items),
                         self.item_bias(batch.positive_items), self.item_bias(batch.negative_items))
        return ranking + self.config.reg_weight * reg


__all__ = ["MMDFM", "MMDFMConfig"]
