"""ALDI. Huang, Wang, Zhang, Wang, Yu, Chen & Li, "Aligning Distillation For Cold-start Item
Recommendation", SIGIR 2023. https://doi.org/10.1145/3539618.3591732
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import COLDREC_PATIENCE, item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss
from modalrec.nn.coldstart import MLP, encode_items, pair_item_scores
from modalrec.nn.precision import TrainingTables, check_precision


@dataclass(frozen=True)
class ALDIConfig:
    embedding_dim: int = 64  # d, the teacher's (backbone's) vectors when trained here
    hidden_dim: int = 200  # the student towers' hidden width
    alpha: float = 0.9  # weight of the rating-distribution (ranking) alignment
    beta: float = 0.05  # weight of the identification alignment
    gamma: float = 0.1  # weight of the rating (score) alignment
    tws: bool = False  # teacher-warmness weighting of the positives by their popularity
    freq_coef_M: float = 4.0  # M, the cap of that weighting (tanh(a * freq) <= tanh(M))
    backbone_layers: int = 0  # 0: an MF teacher trained here; L > 0: LightGCN with L layers
    backbone_run: str = ""  # a finished warm run whose vectors are the frozen teacher
    reg_weight: float = 1e-4
    modalities: tuple[str, ...] = ()
    standardize: bool = True
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_precision(self.train_precision)
        check_at_least("model", 0, alpha=self.alpha, beta=self.beta, gamma=self.gamma)
        check_range("model.freq_coef_M", self.freq_coef_M, low=0, low_open=True)
        check_at_least("model", 1, hidden_dim=self.hidden_dim)


def popularity_weights(num_users: int, num_items: int, users: Tensor, items: Tensor, coef_m: float) -> Tensor:
    r"""ALDI's teacher-warmness weight per item, :math:`\min(\tanh(a f_i), \tanh M)` with
    :math:`f_i = \sum_{u \ni i} 1/|N_u|` and :math:`a = M / \mathbb E[f]` (mean interactions per item over
    mean per user). Shapes: (E,), (E,) -> (I,)."""
    user_degree = torch.bincount(users, minlength=num_users).float().clamp(min=1)
    frequency = torch.zeros(num_items).index_add_(0, items, 1.0 / user_degree[users])
    expected = (len(items) / num_items) / max(len(items) / num_users, 1e-12)
    return torch.tanh(coef_m / expected * frequency).clamp(max=float(torch.tanh(torch.tensor(coef_m))))


@register_model(
    "aldi",
    config=ALDIConfig,
    description="ALDI: a content student distilled from the warm teacher by rating, ranking and identity alignment",
    uses_content=True,
    training_defaults=COLDREC_PATIENCE,  # with backbone_run (why: docs/benchmarks/notes.md)
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class ALDI(Recommender):
    r"""A student maps content (items) and teacher vectors (users) into a space where it reproduces the
    warm teacher's ratings, rankings and item identities; cold items are scored by the student.

    Teacher scores :math:`t_{ui} = \mathbf u^\top\mathbf v_i`; student :math:`s_{ui} = f_U(\mathbf u)^\top
    f_I(\mathbf x_i)`; for a batch of triples :math:`(u, i, j)`, with :math:`w_i` the warmness weight
    (1 unless ``tws``):

    .. math::
        \mathcal L = \mathrm{BPR}(s_{ui}, s_{uj})
        + \gamma\,\overline{|t_{ui} - s_{ui}| + |t_{uj} - s_{uj}|}
        + \alpha\,\overline{w_i\,\mathrm{BCE}(s_{ui} - s_{uj},\ \sigma(t_{ui} - t_{uj}))}
        + \beta\,\overline{w_i\,\mathrm{BCE}(d^s_i,\ \sigma(d^t_i))}

    where :math:`d_i = \mathbf v_i^\top\mathbf v_i - \frac1B\sum_j \mathbf v_i^\top\mathbf v_j` in each
    space (the identification distance). The teacher is read without gradient. Scores are one dot
    product of :math:`[\mathbf u, f_U(\mathbf u)]` with :math:`[\mathbf v_i, \mathbf 0]` for warm and
    :math:`[\mathbf 0, f_I(\mathbf x_i)]` for cold items. The teacher is frozen from ``backbone_run`` or
    trained here with BPR in the same steps.

    Shapes: content (I, F); output vectors (U, 2d), (I, 2d).
    """

    content: Tensor
    item_weights: Tensor

    def __init__(self, config: ALDIConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("aldi", config, inputs, num_layers=config.backbone_layers)
        self.scaler, content = item_content("aldi", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.training_tables = TrainingTables(config.train_precision)
        weights = (popularity_weights(inputs.num_users, inputs.num_items, inputs.train_users.long(),
                                      inputs.train_items.long(), config.freq_coef_M)
                   if config.tws else torch.ones(inputs.num_items))
        self.register_buffer("item_weights", weights, persistent=False)
        dim = self.backbone.dim
        self.user_tower = MLP([dim, config.hidden_dim, dim])
        self.item_tower = MLP([content.shape[1], config.hidden_dim, dim])

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        user = users_all.index_select(0, batch.users).detach()
        positive = items_all.index_select(0, batch.positive_items).detach()
        negative = items_all.index_select(0, batch.negative_items).detach()
        student_user = encode_items(self.user_tower, users_all.detach(), batch.users)  # f_U once per distinct user
        student_items = encode_items(self.item_tower, self.training_tables(self.content),
                                     torch.cat([batch.positive_items, batch.negative_items]))
        student_pos, student_neg = student_items.chunk(2)
        t_pos, t_neg = pair_item_scores(user, positive), pair_item_scores(user, negative)
        s_pos, s_neg = pair_item_scores(student_user, student_pos), pair_item_scores(student_user, student_neg)
        weight = self.item_weights.index_select(0, batch.positive_items)
        rating = ((t_pos - s_pos).abs() + (t_neg - s_neg).abs()).mean()
        ranking = (weight * F.binary_cross_entropy_with_logits(s_pos - s_neg, torch.sigmoid(t_pos - t_neg),
                                                                reduction="none")).mean()
        identity = (weight * F.binary_cross_entropy_with_logits(
            self.identity_distance(student_pos, student_neg), torch.sigmoid(self.identity_distance(positive, negative)),
            reduction="none")).mean()
        c = self.config
        student = bpr_loss(s_pos, s_neg) + c.gamma * rating + c.alpha * ranking + c.beta * identity
        return self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, c.reg_weight) + student

    @staticmethod
    def identity_distance(positive: Tensor, negative: Tensor) -> Tensor:
        """v_i.v_i minus the mean of v_i.v_j over the batch's negatives, taken as v_i times the negatives' mean
        vector (the same value in O(B d) instead of O(B^2 d)). Shapes: (B, d), (B, d) -> (B,)."""
        return (positive * positive).sum(1) - positive @ negative.mean(0)

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        warm = self.backbone.warm
        student_items = (1 - warm) * self.item_tower(self.content)
        return Embeddings(torch.cat([users, self.user_tower(users)], 1), torch.cat([warm * items, student_items], 1))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        student = self.item_tower(scale_new_content(self.scaler, features, self.content.device))
        return torch.cat([student.new_zeros(len(student), self.backbone.dim), student], 1)


__all__ = ["ALDI", "ALDIConfig"]
