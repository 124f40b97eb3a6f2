"""Heater. Zhu, Lin, He, Wang, Li & Caverlee, "Recommendation for New Users and New Items via Randomized
Training and Mixture-of-Experts Transformation", SIGIR 2020. https://doi.org/10.1145/3397271.3401178
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn.coldstart import MLP, encode_items, pair_item_scores
from modalrec.nn.precision import ContentLinear, TrainingTables, check_precision


@dataclass(frozen=True)
class HeaterConfig:
    embedding_dim: int = 64  # size of the warm backbone's preference vectors when trained here
    hidden_dim: int = 200  # hidden width of each expert
    n_expert: int = 5  # K, the experts mixing content into a preference-like vector
    n_dropout: float = 0.5  # p, the chance a warm item's preference vector is replaced by its content vector
    alpha: float = 0.5  # weight of the similarity constraint ||v_c - v_cf||^2
    backbone_layers: int = 0  # 0: an MF backbone trained here; L > 0: LightGCN with L layers
    backbone_run: str = ""  # a finished warm run whose vectors are the frozen backbone
    reg_weight: float = 1e-4
    modalities: tuple[str, ...] = ()
    standardize: bool = True
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_precision(self.train_precision)
        check_range("model.n_dropout", self.n_dropout, low=0, high=1)
        check_at_least("model", 1, n_expert=self.n_expert, hidden_dim=self.hidden_dim, embedding_dim=self.embedding_dim)
        check_at_least("model", 0, alpha=self.alpha)


class MixtureOfExperts(nn.Module):
    r""":math:`\mathbf v^c = \tanh\big(\sum_k g_k(\mathbf x)\, E_k(\mathbf x)\big)`, with
    :math:`\mathbf g = \mathrm{softmax}(W_g \mathbf x)`. Shapes: (N, F) -> (N, d)."""

    def __init__(self, content_dim: int, hidden_dim: int, out_dim: int, n_expert: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(MLP([content_dim, hidden_dim, out_dim]) for _ in range(n_expert))
        self.gate = ContentLinear(content_dim, n_expert)

    def forward(self, content: Tensor) -> Tensor:
        outputs = torch.stack([expert(content) for expert in self.experts], dim=1)  # (N, K, d)
        gates = torch.softmax(self.gate(content), dim=1).unsqueeze(2)  # (N, K, 1)
        return torch.tanh((gates * outputs).sum(1))


@register_model(
    "heater",
    config=HeaterConfig,
    description="Heater: mixture-of-experts content transform, randomized training and a similarity constraint",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class Heater(Recommender):
    r"""Content mapped by a mixture of experts into the preference space, kept close to the warm vector,
    and randomly swapped in for it during training so the final transform serves both.

    With backbone vectors :math:`\mathbf u^{cf}, \mathbf v^{cf}_i` and content :math:`\mathbf x_i`:

    .. math::
        \mathbf v^c_i = \mathrm{MoE}(\mathbf x_i), \qquad
        \tilde{\mathbf v}_i = \begin{cases} \mathbf v^c_i & \text{with probability } p \text{ (or when } i
        \text{ is cold)} \\ \mathbf v^{cf}_i & \text{otherwise} \end{cases}, \qquad
        \hat y_{ui} = f_U(\mathbf u^{cf})^\top f_I(\tilde{\mathbf v}_i),

    .. math::
        \mathcal L = \tfrac{1}{2B}\sum_{(u,i)} (\mathbf u^{cf\top}\mathbf v^{cf}_i - \hat y_{ui})^2
        + \alpha\,\tfrac1B\sum_i \lVert \mathbf v^c_i - \mathbf v^{cf}_i \rVert^2

    over the batch's positive and negative pairs; :math:`f_U, f_I` are one tanh layer then a linear one.
    The backbone is frozen from ``backbone_run`` or trained here with BPR, read without gradient above.

    Shapes: content (I, F); backbone (U, d), (I, d); output (U, d), (I, d).
    """

    content: Tensor

    def __init__(self, config: HeaterConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("heater", config, inputs, num_layers=config.backbone_layers)
        self.scaler, content = item_content("heater", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.training_tables = TrainingTables(config.train_precision)
        dim = self.backbone.dim
        self.experts = MixtureOfExperts(content.shape[1], config.hidden_dim, dim, config.n_expert)
        self.user_transform = MLP([dim, dim, dim])
        self.item_transform = MLP([dim, dim, dim])

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        items = torch.cat([batch.positive_items, batch.negative_items])
        user = users_all.index_select(0, torch.cat([batch.users, batch.users])).detach()
        preference = items_all.index_select(0, items).detach()  # (2B, d)
        from_content = encode_items(self.experts, self.training_tables(self.content), items)
        warm = self.backbone.warm.index_select(0, items)
        swapped = (torch.rand(len(items), 1, device=warm.device) < self.config.n_dropout).float()
        use_content = torch.maximum(swapped, 1 - warm)
        mixed = use_content * from_content + (1 - use_content) * preference
        predicted = pair_item_scores(self.user_transform(user), self.item_transform(mixed))
        regression = 0.5 * F.mse_loss(predicted, pair_item_scores(user, preference))
        similarity = (warm * (from_content - preference).pow(2)).sum(1).mean()
        backbone = self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, self.config.reg_weight)
        return backbone + regression + self.config.alpha * similarity

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        warm = self.backbone.warm
        mixed = warm * items + (1 - warm) * self.experts(self.content)
        return Embeddings(self.user_transform(users), self.item_transform(mixed))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        return self.item_transform(self.experts(scale_new_content(self.scaler, features, self.content.device)))


__all__ = ["Heater", "HeaterConfig"]
