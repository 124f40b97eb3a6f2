"""ContentMF, modalrec's own cold-start model: matrix factorisation whose item vectors are anchored in the
items' pretrained content, trained with a softmax over the catalogue, so that an item nobody has interacted
with is scored on the same scale as a warm one.

Designed here from the levers the multimodal literature names for sparse data: transfer from pretrained
encoders (an item's vector is first a projection of its content features) and robustness to missing
interactions (the ID residual is dropped at random during training, as DropoutNet drops the preference
input, Volkovs et al., NeurIPS 2017, so the content projection alone must rank well). The softmax over every
warm item (a sampled one on large catalogues) replaces BPR's single negative, as in sampled-softmax
retrieval models (Covington et al., RecSys 2016); it is what lets the content path learn popularity as well as
taste, which ranks cold items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content, scale_new_content
from modalrec.models.registry import register_model
from modalrec.nn.coldstart import MLP
from modalrec.nn.contrastive import info_nce

OTHER_MODALITY_WEIGHT = 0.25  # w_m of every modality but text, when text is read and no weights are given


@dataclass(frozen=True)
class ContentMFConfig:
    embedding_dim: int = 64  # d, the user and item vector size
    hidden_dim: int = 0  # hidden width of the content projection (0: linear)
    id_dropout: float = 0.5  # p, chance that a warm item's ID residual is dropped in a training step
    feature_dropout: float = 0.3  # dropout on the scaled content features during training
    reg_weight: float = 1e-4  # lambda, L2 on every parameter (Adam's coupled weight decay)
    content_loss_weight: float = 0.0  # alpha, weight of the same softmax scored by content alone (no ID residual)
    alignment_weight: float = 0.0  # beta, InfoNCE between an item's single-modality projections (2+ modalities)
    alignment_temperature: float = 0.2  # tau of that InfoNCE
    softmax_items: int = 8192  # full softmax up to this many warm items; above it, a uniform sample this large
    modalities: tuple[str, ...] = ()  # () means every modality of the dataset
    modality_weights: dict[str, float] = field(default_factory=dict)  # w_m; {} = text 1, others OTHER_MODALITY_WEIGHT
    standardize: bool = True  # centre and scale each modality once on the catalogue

    def __post_init__(self) -> None:
        check_at_least("model", 1, embedding_dim=self.embedding_dim, softmax_items=self.softmax_items)
        check_at_least("model", 0, hidden_dim=self.hidden_dim, reg_weight=self.reg_weight,
                       content_loss_weight=self.content_loss_weight, alignment_weight=self.alignment_weight)
        check_range("model.alignment_temperature", self.alignment_temperature, low=0, low_open=True)
        for modality, weight in self.modality_weights.items():
            check_range(f"model.modality_weights.{modality}", weight, low=0)
        check_range("model.id_dropout", self.id_dropout, low=0, high=1, high_open=True)
        check_range("model.feature_dropout", self.feature_dropout, low=0, high=1, high_open=True)


@register_model(
    "contentmf",
    config=ContentMFConfig,
    description="ContentMF (ours): MF whose item vectors are content projections plus dropped-out ID "
                "residuals, trained with a softmax; cold items are scored from content on the warm scale",
    uses_content=True,
    training_defaults={"learning_rate": 0.003},  # converges within the benchmark's epoch cap (docs/benchmarks/notes.md)
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class ContentMF(Recommender[ContentMFConfig]):
    r"""Item vectors anchored in content, with an ID residual for items that have interactions.

    With :math:`\mathbf x_i = [w_1 \mathbf x_i^1, \dots, w_M \mathbf x_i^M]` the item's content (each chosen modality
    centred and scaled to unit average norm on the catalogue, times its weight :math:`w_m` from
    ``modality_weights``, by default 1 for text and ``OTHER_MODALITY_WEIGHT`` for the others, so the projection
    leans on the item's description; then concatenated), :math:`g` a linear map
    (or an MLP) to :math:`d + 1` outputs split into a vector and a bias, and :math:`\mathbf e_i, c_i` a free ID
    residual of warm items (zero for items without interactions):

    .. math::
        \mathbf v_i = g_{1..d}(\mathbf x_i) + m_i\,\mathbf e_i, \qquad
        b_i = g_{d+1}(\mathbf x_i) + m_i\,c_i, \qquad
        \hat y_{ui} = \mathbf p_u^\top \mathbf v_i + b_i,

    where :math:`m_i = 1` at inference and :math:`m_i \sim \mathrm{Bernoulli}(1 - p)` per item and step in
    training (``id_dropout``), so the content projection alone must rank well. For each training pair
    :math:`(u, i)` the loss is the softmax cross-entropy over the warm items :math:`\mathcal W`

    .. math::
        \mathcal S(\hat y) = -\tfrac1B \sum_{(u,i)} \Big(\hat y_{ui} - \log \textstyle\sum_{j \in \mathcal W} e^{\hat y_{uj}}\Big),
        \qquad
        \mathcal L = \mathcal S(\hat y) + \alpha\,\mathcal S(\hat y^{m=0}) + \beta\,\mathcal L_{\text{align}} + \tfrac{\lambda}{2} \lVert\Theta\rVert^2,

    over a uniform sample of ``softmax_items`` warm items when there are more (the sampled negatives stand in
    for the sum). Items without interactions are never in the softmax: that they are cold is not a signal the
    content path may learn. The bias column lets content predict an item's popularity, the strongest single
    signal for ranking items nobody has seen. The score is one dot product of :math:`[\mathbf p_u, 1]` with
    :math:`[\mathbf v_i, b_i]`.

    Two optional terms (off by default) push the content path further. :math:`\hat y^{m=0}` scores every
    warm item from content alone (``content_loss_weight`` :math:`\alpha`), so :math:`g` ranks warm items
    without any residual. :math:`\mathcal L_{\text{align}}`
    (``alignment_weight`` :math:`\beta`) aligns the modalities: with :math:`\mathbf x_i^{(m)}` the content with
    every column outside modality :math:`m` set to zero (its catalogue mean, once centred), the vector parts
    :math:`\mathbf z_i^{(m)} = g_{1..d}(\mathbf x_i^{(m)})` of two modalities are two views of the same item,

    .. math::
        \mathcal L_{\text{align}} = \operatorname{mean}_{m < m'}\ \tfrac1{|\mathcal B|} \sum_{i \in \mathcal B}
        -\log \frac{\exp(\cos(\mathbf z_i^{(m)}, \mathbf z_i^{(m')}) / \tau)}
        {\sum_{k \in \mathcal B} \exp(\cos(\mathbf z_i^{(m)}, \mathbf z_k^{(m')}) / \tau)},

    an InfoNCE over the batch's distinct positive items :math:`\mathcal B` (``alignment_temperature``
    :math:`\tau`), so each modality alone has to say what the item is.

    Shapes: content (I, F); user vectors (U, d); ID residuals (I, d + 1); embeddings (U, d + 1), (I, d + 1).
    """

    content: Tensor
    warm_items: Tensor
    warm_mask: Tensor
    warm_position: Tensor
    column_modality: Tensor
    column_weight: Tensor

    def __init__(self, config: ContentMFConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.scaler, content = item_content("contentmf", config, inputs)
        widths = [inputs.features[m].shape[1] for m in self.scaler.modalities]
        if config.alignment_weight and len(widths) < 2:
            raise ConfigError("model.alignment_weight", "contentmf aligns modalities, but it reads only "
                              f"'{self.scaler.modalities[0]}'; set model.alignment_weight=0 or add a modality")
        self.register_buffer("column_modality", torch.repeat_interleave(torch.arange(len(widths)),
                                                                        torch.tensor(widths)), persistent=False)
        self.register_buffer("column_weight", modality_weights(config, self.scaler.modalities)[self.column_modality],
                             persistent=False)
        self.register_buffer("content", content * self.column_weight, persistent=False)
        dim = config.embedding_dim
        sizes = [content.shape[1], config.hidden_dim, dim + 1] if config.hidden_dim else [content.shape[1], dim + 1]
        self.projection = nn.Sequential(nn.Dropout(config.feature_dropout), MLP(sizes))
        self.user_embedding = nn.Embedding(inputs.num_users, dim)
        self.id_residual = nn.Embedding(inputs.num_items, dim + 1)
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.zeros_(self.id_residual.weight)
        warm = torch.zeros(inputs.num_items, dtype=torch.bool)
        warm[inputs.train_items.long()] = True
        self.register_buffer("warm_mask", warm.unsqueeze(1).float(), persistent=False)
        self.register_buffer("warm_items", torch.nonzero(warm).squeeze(1), persistent=False)
        position = torch.full((inputs.num_items,), -1, dtype=torch.long)
        position[self.warm_items] = torch.arange(len(self.warm_items))
        self.register_buffer("warm_position", position, persistent=False)  # row of each warm item in warm_items

    def loss(self, batch: TrainBatch) -> Tensor:
        kept = torch.rand(self.num_items, 1, device=batch.users.device) >= self.config.id_dropout  # one draw a step
        user = self.user_embedding.weight.index_select(0, batch.users)  # adds repeated users' gradients in order
        ranking = self.softmax_loss(user, batch.positive_items, kept)
        if self.config.content_loss_weight:
            content_only = self.softmax_loss(user, batch.positive_items, torch.zeros_like(kept))
            ranking = ranking + self.config.content_loss_weight * content_only
        if self.config.alignment_weight:
            ranking = ranking + self.config.alignment_weight * self.alignment_loss(batch.positive_items)
        penalty = sum((p.pow(2).sum() for p in self.parameters()), ranking.new_zeros(()))
        return ranking + 0.5 * self.config.reg_weight * penalty

    def softmax_loss(self, user: Tensor, positives: Tensor, kept: Tensor) -> Tensor:
        """The full softmax over the warm items, or the sampled one on catalogues with more than ``softmax_items``."""
        if len(self.warm_items) <= self.config.softmax_items:
            return self.full_softmax(user, positives, kept)
        return self.sampled_softmax(user, positives, kept)

    def full_softmax(self, user: Tensor, positives: Tensor, kept: Tensor) -> Tensor:
        """Mean cross-entropy of each positive among every warm item. Shapes: (B, d), (B,) -> ()."""
        vectors = self.item_vectors(self.warm_items, kept)  # (W, d + 1); the positives are among them
        logits = user @ vectors[:, :-1].T + vectors[:, -1]
        return F.cross_entropy(logits, self.warm_position.index_select(0, positives))

    def sampled_softmax(self, user: Tensor, positives: Tensor, kept: Tensor) -> Tensor:
        """The same over each positive plus a uniform sample of ``softmax_items`` warm items shared by the batch."""
        picks = torch.randint(len(self.warm_items), (self.config.softmax_items,), device=user.device)
        vectors = self.item_vectors(torch.cat([positives, self.warm_items.index_select(0, picks)]), kept)
        positive_vectors, negative_vectors = vectors[:len(user)], vectors[len(user):]
        positive = (user * positive_vectors[:, :-1]).sum(1) + positive_vectors[:, -1]
        logits = torch.cat([positive.unsqueeze(1), user @ negative_vectors[:, :-1].T + negative_vectors[:, -1]], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(user), dtype=torch.long, device=user.device))  # column 0

    def alignment_loss(self, items: Tensor) -> Tensor:
        """Mean InfoNCE between the projections of each modality alone (the other columns zero), for every pair
        of modalities, over the batch's distinct positive items. Shapes: (B,) -> ()."""
        items = torch.unique(items)
        content = self.content.index_select(0, items)
        views = [self.projection(content * (self.column_modality == m))[:, :-1]
                 for m in range(len(self.scaler.modalities))]
        rows = torch.arange(len(items), device=items.device)
        pairs = list(combinations(views, 2))
        return torch.stack([info_nce(a, b, rows, self.config.alignment_temperature).mean() for a, b in pairs]).mean()

    def item_vectors(self, items: Tensor, kept: Tensor | None = None) -> Tensor:
        """[v_i, b_i] for catalogue rows ``items``. ``kept`` (I, 1) bool says which items keep their ID
        residual in this training step (one draw per step, so an item is the same wherever it appears)."""
        content = self.projection(self.content.index_select(0, items))
        keep = self.warm_mask.index_select(0, items)
        if kept is not None:
            keep = keep * kept.index_select(0, items).float()
        return content + keep * self.id_residual.weight.index_select(0, items)

    def compute_embeddings(self) -> Embeddings:
        users = self.user_embedding.weight
        ones = users.new_ones(len(users), 1)
        items = self.item_vectors(torch.arange(self.num_items, device=users.device))
        return Embeddings(torch.cat([users, ones], dim=1), items)

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        content = scale_new_content(self.scaler, features, self.content.device)
        return self.projection(content * self.column_weight)

    def extra_repr(self) -> str:
        return f"users={self.num_users}, items={self.num_items}, dim={self.config.embedding_dim}"


def modality_weights(config: ContentMFConfig, modalities: list[str]) -> Tensor:
    """(M,) the weight of each modality read, in the scaler's order: ``config.modality_weights``; when it is
    empty, text 1 and every other modality :data:`OTHER_MODALITY_WEIGHT` (1 each when there is no text)."""
    if not config.modality_weights:
        if "text" in modalities and len(modalities) > 1:
            return torch.tensor([1.0 if m == "text" else OTHER_MODALITY_WEIGHT for m in modalities])
        return torch.ones(len(modalities))
    if sorted(config.modality_weights) != sorted(modalities):
        raise ConfigError("model.modality_weights", f"must name exactly the modalities read: {sorted(modalities)}")
    return torch.tensor([float(config.modality_weights[m]) for m in modalities])


__all__ = ["ContentMF", "ContentMFConfig"]
