"""DropoutNet. Volkovs, Yu & Poutanen, "DropoutNet: Addressing Cold Start in Recommender Systems",
NeurIPS 2017. https://papers.nips.cc/paper/7081-dropoutnet-addressing-cold-start-in-recommender-systems
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import COLDREC_TRAINING, item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn.coldstart import MLP, encode_items, pair_item_scores
from modalrec.nn.precision import ContentLinear, TrainingTables, check_precision


@dataclass(frozen=True)
class DropoutNetConfig:
    embedding_dim: int = 64  # size of the warm backbone's U, V when trained here
    hidden_sizes: tuple[int, ...] = (200, 100)  # the paper's tanh layers of f_U and f_V
    output_dim: int = 64  # size of the transformed vectors f_U(u), f_V(v)
    n_dropout: float = 0.5  # p, the share of the batch's item preference inputs set to 0 (input dropout)
    backbone_layers: int = 0  # 0: an MF backbone trained here; L > 0: LightGCN with L layers
    backbone_run: str = ""  # a finished warm run whose vectors are the frozen backbone
    reg_weight: float = 1e-4  # L2 on the backbone's batch rows (when trained here)
    modalities: tuple[str, ...] = ()  # () means every modality, concatenated as the item content
    standardize: bool = True
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_precision(self.train_precision)
        check_range("model.n_dropout", self.n_dropout, low=0, high=1)
        check_at_least("model", 1, embedding_dim=self.embedding_dim, output_dim=self.output_dim)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ConfigError("model.hidden_sizes", f"expected at least one size, each >= 1, got {self.hidden_sizes}")


@register_model(
    "dropoutnet",
    config=DropoutNetConfig,
    description="DropoutNet: a warm backbone re-learned from [preference, content] with input dropout (cold start)",
    uses_content=True,
    training_defaults=COLDREC_TRAINING,  # with backbone_run (why: docs/benchmarks/notes.md)
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class DropoutNet(Recommender):
    r"""Two towers re-learn a warm model's scores from preference and content inputs, with the preference
    input dropped at random so the item tower also learns to score from content alone.

    With the backbone's vectors :math:`\mathbf U_u, \mathbf V_i` and content :math:`\Phi_i`:

    .. math::
        \hat{\mathbf u} = f_U(\mathbf U_u), \qquad
        \hat{\mathbf v}_i = f_V([\,\delta_i \mathbf V_i,\ \Phi_i\,]), \qquad
        \mathcal L = \tfrac{1}{2B}\sum_{(u,i)} (\mathbf U_u^\top\mathbf V_i - \hat{\mathbf u}^\top\hat{\mathbf v}_i)^2

    over the batch's positive and negative pairs, where :math:`\delta_i = 0` for a share ``n_dropout``
    of the rows and 1 otherwise. :math:`f_U, f_V` are tanh MLPs then a linear output layer. At inference a
    cold item has :math:`\delta_i = 0`: it is scored from :math:`f_V([\mathbf 0, \Phi_i])`.

    The backbone is frozen when ``backbone_run`` names a finished run; otherwise it is trained here with
    BPR in the same steps, the regression reading it without gradient (the paper's pretrained input).

    Shapes: content (I, F); backbone (U, d), (I, d); output vectors (U, d_out), (I, d_out).
    """

    content: Tensor

    def __init__(self, config: DropoutNetConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("dropoutnet", config, inputs, num_layers=config.backbone_layers)
        self.scaler, content = item_content("dropoutnet", config, inputs)
        self.register_buffer("content", content, persistent=False)
        dim, hidden = self.backbone.dim, list(config.hidden_sizes)
        self.user_tower = MLP([dim, *hidden, config.output_dim])
        # f_V's first layer on [V_i, Phi_i], as two blocks so the content block runs once per distinct item
        self.item_preference_layer = nn.Linear(dim, hidden[0], bias=False)
        self.item_content_layer = ContentLinear(content.shape[1], hidden[0])
        self.training_tables = TrainingTables(config.train_precision)
        self.item_head = nn.Sequential(nn.Tanh(), MLP([*hidden, config.output_dim]))

    def item_vectors(self, preference: Tensor, content_part: Tensor) -> Tensor:
        """f_V from the preference input and the content block's output. Shapes: (N, d), (N, h_1) -> (N, d_out)."""
        return self.item_head(self.item_preference_layer(preference) + content_part)

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        items = torch.cat([batch.positive_items, batch.negative_items])
        pair_users = torch.cat([batch.users, batch.users])  # (2B,): each user with its positive, then its negative
        user = users_all.index_select(0, pair_users).detach()  # (2B, d)
        preference = items_all.index_select(0, items).detach()
        target = pair_item_scores(user, preference)
        kept = (torch.rand(len(items), 1, device=preference.device) >= self.config.n_dropout).float()
        # f_V once per distinct (item, kept) pair and its content block once per distinct item: a batch repeats both
        distinct, rows = torch.unique(items * 2 + kept.squeeze(1).long(), return_inverse=True)
        distinct_items, distinct_kept = distinct // 2, (distinct % 2).unsqueeze(1).float()
        content_part = encode_items(self.item_content_layer, self.training_tables(self.content), distinct_items)
        item_part = self.item_vectors(distinct_kept * items_all.index_select(0, distinct_items).detach(), content_part)
        user_part = encode_items(self.user_tower, users_all.detach(), pair_users)  # f_U once per distinct user
        predicted = pair_item_scores(user_part, item_part.index_select(0, rows))
        regression = 0.5 * F.mse_loss(predicted, target)
        warm = self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, self.config.reg_weight)
        return warm + regression

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()  # cold items' preference rows are 0
        return Embeddings(self.user_tower(users), self.item_vectors(items, self.item_content_layer(self.content)))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        content = scale_new_content(self.scaler, features, self.content.device)
        return self.item_vectors(content.new_zeros(len(content), self.backbone.dim), self.item_content_layer(content))


__all__ = ["DropoutNet", "DropoutNetConfig"]
