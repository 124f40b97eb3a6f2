"""MMAL: a multimodal attention network. The item is an attention-weighted mix of its ID and modality embeddings.

Follows the component-level attention of Chen et al., "Attentive Collaborative Filtering: Multimedia
Recommendation with Item- and Component-Level Attention", SIGIR 2017 (https://doi.org/10.1145/3077136.3080797),
applied as in Liu et al., "User Diverse Preference Modeling by Multimodal Attentive Metric Learning", ACM MM 2019
(https://doi.org/10.1145/3343031.3350953), whose user-specific attention weighs an item's modalities; trained with
BPR (dot-product score, not MAML's metric learning).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, NotSupported, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss, l2_penalty
from modalrec.nn.content import ContentScaler, content_tables, warm_item_mask
from modalrec.nn.fusion import AttentionFusion, ModalityProjection, check_choice

ATTENTION_KINDS = ("user", "user_item")


@dataclass(frozen=True)
class MMALConfig:
    embedding_dim: int = 64  # d, the user vector and every item source (ID and each projected modality)
    attention: str = "user"  # user: a_us, factors (exact embeddings) | user_item: a_uis as in ACF, scored directly
    attention_dim: int = 32  # h, the attention MLP's hidden width
    bounded_attention: bool = True  # attention logits: tanh of the user's term (False: unbounded)
    feature_hidden_dim: int = 0  # hidden width of each modality's projection; 0 = linear
    reg_weight: float = 1e-2  # lambda, L2 on the batch's user vectors and item sources
    modalities: tuple[str, ...] = ()  # which feature tables to read; () means all of them
    standardize: bool = True  # scale each modality to zero mean, unit average norm before projecting
    content_dropout: float = 0.0  # dropout on the scaled content features while training
    reg_attended: bool = True  # L2 on the attended item vector S*sum_s a*x_s (what p_u meets), not on the sources
    item_bias: bool = True  # add b_i + beta.f_i to the score: an ID bias and a content bias, as in VBPR
    shared_logits: bool = False  # add a learned logit c_s per source, shared by all users (False: c_s = 0)

    def __post_init__(self) -> None:
        check_choice("model.attention", self.attention, ATTENTION_KINDS)
        check_at_least("model", 1, embedding_dim=self.embedding_dim, attention_dim=self.attention_dim)
        check_range("model.feature_hidden_dim", self.feature_hidden_dim, low=0)
        check_range("model.content_dropout", self.content_dropout, low=0, high=1, high_open=True)


def capabilities_for_attention(config: MMALConfig) -> Capabilities:
    """Attention on the user alone factors into vectors; attention on each (user, item) pair does not."""
    factors = config.attention == "user"
    return Capabilities(dot_product=factors, cold_items=True, new_items=factors, modality_weights=True)


@register_model(
    "mmal",
    config=MMALConfig,
    description="MMAL: user-aware attention over an item's ID and modality embeddings (ACF/MAML-style), BPR",
    uses_content=True,
    # the slower rate plateaus for long stretches, hence the longer patience
    training_defaults={"learning_rate": 5e-4, "patience": 40},
    capabilities=capabilities_for_attention,
)
class MMAL(Recommender[MMALConfig]):
    r"""Items as a user-aware attention-weighted combination of their ID and modality embeddings.

    An item has sources :math:`\mathbf x_{i0} = \mathbf e_i` (its ID embedding) and
    :math:`\mathbf x_{im} = g_m(\mathbf f_{im})` (each modality's projected features). ACF's component-level
    attention (Chen et al., 2017) weighs them for user u:

    .. math::
        a_{uis} = \mathrm{softmax}_s\big(\tanh\big(\mathbf w_s^\top \mathrm{ReLU}(W_u \mathbf p_u
        + W_x \mathbf x_{is} + \mathbf b)\big)\big), \qquad
        \hat y_{ui} = \mathbf p_u^\top \bar{\mathbf x}_{ui}, \quad
        \bar{\mathbf x}_{ui} = S \sum_s a_{uis}\, \mathbf x_{is}, \qquad
        \mathcal L = \mathrm{BPR} + \tfrac{\lambda}{2B}\sum \big(\lVert\mathbf p_u\rVert^2
        + \lVert\bar{\mathbf x}_{ui}\rVert^2 + \lVert\bar{\mathbf x}_{uj}\rVert^2\big)

    Two choices differ from ACF, both for the same failure (see :class:`modalrec.nn.fusion.AttentionFusion`):
    with ACF's unbounded logits and the penalty on the raw sources, the attention can put all its weight on
    the ID, and the model becomes BPR with its ID scores scaled up free of the penalty and the content
    unused. Here the logits are bounded by tanh (``bounded_attention``), and the penalty is on the attended
    item vector :math:`\bar{\mathbf x}` the user meets (``reg_attended``), so the weights stay user-specific.

    ``shared_logits=True`` adds a learned logit :math:`c_s` per source, shared by all users, inside the
    softmax (what :class:`~modalrec.nn.fusion.AttentionFusion` does for MMDFM); it is off by default (chosen
    on validation, docs/benchmarks/notes.md).

    With ``attention="user"`` (default) the :math:`W_x\mathbf x_{is}` term is dropped: the weights
    :math:`a_{us}` depend on the user only, like MAML's user-specific modality attention (Liu et al., 2019),
    and the score factors as :math:`S\,[a_{u0}\mathbf p_u, \dots, a_{uM}\mathbf p_u]^\top[\mathbf x_{i0}, \dots,
    \mathbf x_{iM}]`, so :meth:`embeddings` is exact. The factor S = 1 + M makes equal weights the plain sum of
    the sources, as in VBPR (a plain weighted mean shrinks scores and gradients S-fold and trained far slower
    here). ``"user_item"`` keeps ACF's full form; :meth:`score` then evaluates every (user, item) pair in item
    chunks and there are no embeddings.

    ``item_bias`` adds VBPR's two bias terms to every score, :math:`b_i + \boldsymbol\beta^\top\mathbf f_i` (an ID
    bias and a content bias, both under the penalty); the embeddings then carry one more column (1 for users).

    :meth:`modality_weights` gives the weights for explanation, named by ``modality_names``
    (``["id", "image", "text"]`` with both modalities). Cold items (no training interaction) have
    :math:`\mathbf e_i = 0`, so they are scored from content alone.

    Args:
        config: :class:`MMALConfig`.
        inputs: sizes, the training items (to find cold items) and ``features`` (at least one modality).

    Shapes: sources (I, S, d) with S = 1 + M; embeddings (U, S*d), (I, S*d).
    """

    content: Tensor
    warm: Tensor

    def __init__(self, config: MMALConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        raw = content_tables("mmal", config.modalities, inputs.features, scale=False)
        self.modality_names = ["id", *raw]
        self.modality_dims = [table.shape[1] for table in raw.values()]
        self.scaler = ContentScaler(raw, scale=config.standardize)
        self.register_buffer("content", self.scaler(raw), persistent=False)  # (I, F)
        self.register_buffer("warm", warm_item_mask(inputs.num_items, inputs.train_items), persistent=False)
        dim = config.embedding_dim
        self.user_embedding = nn.Embedding(inputs.num_users, dim)  # p_u
        self.item_id = nn.Embedding(inputs.num_items, dim)  # e_i
        self.feature_projection = ModalityProjection(self.modality_dims, dim, config.feature_hidden_dim)  # g_m
        self.id_bias = nn.Embedding(inputs.num_items, 1) if config.item_bias else None  # b_i
        self.content_bias = nn.Linear(self.content.shape[1], 1, bias=False) if config.item_bias else None  # beta
        self.attention = AttentionFusion(len(self.modality_names), dim, dim, config.attention_dim,
                                         condition_on_item=config.attention == "user_item",
                                         bounded=config.bounded_attention, shared_logits=config.shared_logits)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_id.weight)
        if self.id_bias is not None and self.content_bias is not None:
            nn.init.zeros_(self.id_bias.weight)
            nn.init.zeros_(self.content_bias.weight)

    def biases(self, content: Tensor, id_bias: Tensor | None = None) -> Tensor | None:
        """b_i + beta.f_i per item (b_i = 0 for cold and new items), or None without ``item_bias``.

        Shapes: scaled content (N, F), ID biases (N, 1) -> (N,).
        """
        if self.content_bias is None:
            return None
        first_order = self.content_bias(content)
        return (first_order if id_bias is None else first_order + id_bias).squeeze(1)

    def catalogue_biases(self) -> Tensor | None:
        """The catalogue's item biases, cold items without b_i. Shape: (I,)."""
        id_bias = None if self.id_bias is None else self.warm * self.id_bias.weight
        return self.biases(self.content, id_bias)

    def sources_of(self, content: Tensor, id_source: Tensor) -> Tensor:
        """Item sources from scaled content and the ID embedding. Shapes: (N, F), (N, d) -> (N, S, d)."""
        projected = self.feature_projection(torch.split(content, self.modality_dims, dim=1))  # (N, M, d)
        return torch.cat([id_source.unsqueeze(1), projected], dim=1)

    def item_sources(self) -> Tensor:
        """The catalogue's [ID, modality_1, ...], the ID zeroed for cold items. Shapes: (I, S, d)."""
        content = F.dropout(self.content, self.config.content_dropout, self.training)
        return self.sources_of(content, self.warm * self.item_id.weight)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Vectors for new items from their raw features alone (no ID embedding), comparable with
        ``embeddings().items``; only where the attention factors.

        Shapes: {modality: (N, F_m)} -> (N, S*d).
        """
        if not self.attention.factorizes:
            raise NotSupported("mmal with attention='user_item' has no item vectors: it does not factor")
        content = self.scaler({m: features[m].to(self.content.device) for m in self.modality_names[1:]})
        no_id = content.new_zeros(len(content), self.config.embedding_dim)
        vectors = self.attention.item_vectors(self.sources_of(content, no_id))
        bias = self.biases(content)
        return vectors if bias is None else torch.cat([vectors, bias.unsqueeze(1)], dim=1)

    def user_blocks(self, user: Tensor) -> Tensor:
        """The user vector repeated once per source. Shapes: (B, d) -> (B, S, d)."""
        return user.unsqueeze(1).expand(-1, len(self.modality_names), -1)

    def compute_embeddings(self) -> Embeddings:
        if not self.attention.factorizes:
            raise NotSupported("mmal with attention='user_item' weighs each (user, item) pair: not a dot product")
        user = self.user_embedding.weight
        users = self.attention.user_vectors(self.user_blocks(user), user)
        items = self.attention.item_vectors(self.item_sources())
        bias = self.catalogue_biases()
        if bias is None:
            return Embeddings(users, items)
        return Embeddings(torch.cat([users, users.new_ones(len(users), 1)], dim=1),
                          torch.cat([items, bias.unsqueeze(1)], dim=1))

    def score(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        if self.attention.factorizes:
            return super().score(users, items)
        sources = self.item_sources() if items is None else self.item_sources()[items]
        user = self.user_embedding(users)
        scores = self.attention.score_all(self.user_blocks(user), user, sources)
        bias = self.catalogue_biases()
        if bias is None:
            return scores
        return scores + (bias if items is None else bias[items])

    def modality_weights(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        """Attention weight of each source for each user and item, ordered as ``modality_names``; rows sum to 1.

        With ``attention="user"`` the weights are the same for every item of a user.

        Shapes: users (B,), items (N,) or None for all -> (B, N, 1 + M).
        """
        sources = self.item_sources() if items is None else self.item_sources()[items]
        return self.attention.source_weights(self.user_embedding(users), sources)

    def loss(self, batch: TrainBatch) -> Tensor:
        sources = self.item_sources()
        user = self.user_embedding(batch.users)  # (B, d)
        blocks = self.user_blocks(user)
        positive = sources.index_select(0, batch.positive_items)  # (B, S, d)
        negative = sources.index_select(0, batch.negative_items)
        positive_scores = self.attention.score_pairs(blocks, user, positive)
        negative_scores = self.attention.score_pairs(blocks, user, negative)
        bias = self.catalogue_biases()
        biases: tuple[Tensor, ...] = ()
        if bias is not None:
            biases = (bias.index_select(0, batch.positive_items), bias.index_select(0, batch.negative_items))
            positive_scores, negative_scores = positive_scores + biases[0], negative_scores + biases[1]
        ranking = bpr_loss(positive_scores, negative_scores)
        if self.config.reg_attended:
            positive, negative = self.attended(user, positive), self.attended(user, negative)
        return ranking + self.config.reg_weight * l2_penalty(user, positive, negative, *biases)

    def attended(self, user: Tensor, sources: Tensor) -> Tensor:
        r"""The item vector that user b's score reads, :math:`S\sum_s a_{uis}\mathbf x_{is}`.

        Shapes: (B, d), (B, S, d) -> (B, d).
        """
        return (self.attention.pair_weights(user, sources).unsqueeze(-1) * sources).sum(1)


__all__ = ["MMAL", "MMALConfig"]
