"""CLCRec. Wei, Wang, Li, Nie, Li, Li & Chua, "Contrastive Learning for Cold-Start Recommendation",
ACM Multimedia 2021. https://arxiv.org/abs/2107.05315
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model


@dataclass(frozen=True)
class CLCRecConfig:
    embedding_dim: int = 64  # d, user and item ID embeddings
    hidden_dim: int = 256  # the content encoder's hidden width
    temp_value: float = 2.0  # tau, the temperature of both contrastive losses
    lr_lambda: float = 0.5  # lambda, weight of the item-content loss (1 - lambda on the user-item loss)
    num_sample: float = 0.5  # rho, the share of the batch's item embeddings replaced by encoded content
    reg_weight: float = 1e-3  # weight of the mean L2 norm of the batch's ID embeddings
    backbone_run: str = ""  # a finished warm run whose vectors are frozen in place of the ID embeddings
    modalities: tuple[str, ...] = ()
    standardize: bool = True

    def __post_init__(self) -> None:
        if self.temp_value <= 0 or not 0 <= self.lr_lambda <= 1 or not 0 <= self.num_sample <= 1:
            raise ConfigError("model.temp_value", "temp_value must be > 0, lr_lambda and num_sample in [0, 1]")


@register_model(
    "clcrec",
    config=CLCRecConfig,
    description="CLCRec: contrastive user-item and item-content objectives; cold items scored from encoded content",
    uses_content=True,
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class CLCRec(Recommender):
    r"""Two contrastive objectives maximise the mutual information between content and collaborative
    signals: the encoded content :math:`\mathbf c_i = g(\mathbf x_i)` must identify the item's own ID
    embedding among the batch's items (item-content, cosine), and a user must identify its positive item
    among the batch's items when a share :math:`\rho` of item embeddings is replaced by their content
    (user-item, inner product):

    .. math::
        \mathcal L_{ie} = -\tfrac1B \sum_i \log\frac{e^{\cos(\mathbf v_i,\mathbf c_i)/\tau}}
                                              {\sum_{j} e^{\cos(\mathbf v_i,\mathbf c_j)/\tau}}, \qquad
        \mathcal L_{ui} = -\tfrac1B \sum_{(u,i)} \log\frac{e^{\mathbf u^\top\tilde{\mathbf v}_i/\tau}}
                                              {\sum_{j} e^{\mathbf u^\top\tilde{\mathbf v}_j/\tau}},

    .. math::
        \mathcal L = \lambda\,\mathcal L_{ie} + (1-\lambda)\,\mathcal L_{ui}
                     + \gamma\,\tfrac12(\overline{\lVert\mathbf u\rVert} + \overline{\lVert\mathbf v\rVert}),

    with :math:`j` over the batch's positive and negative items (less the user's other training items and
    repeats of the positive, which are not negatives) and :math:`\tilde{\mathbf v}_j` the ID
    embedding or, for a share :math:`\rho` of the rows, :math:`\mathbf c_j`. Scores: warm items
    :math:`\mathbf u^\top\mathbf v_i`, cold items :math:`\mathbf u^\top\mathbf c_i`.

    Shapes: content (I, F); embeddings (U, d), (I, d).
    """

    content: Tensor
    seen_pairs: Tensor

    def __init__(self, config: CLCRecConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("clcrec", config, inputs)
        self.scaler, content = item_content("clcrec", config, inputs)
        self.register_buffer("content", content, persistent=False)
        pairs = torch.unique(inputs.train_users.long() * inputs.num_items + inputs.train_items.long())
        self.register_buffer("seen_pairs", pairs, persistent=False)  # user * I + item of each training pair
        self.encoder = nn.Sequential(nn.Linear(content.shape[1], config.hidden_dim), nn.LeakyReLU(),
                                     nn.Linear(config.hidden_dim, self.backbone.dim))

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        items = torch.cat([batch.positive_items, batch.negative_items])  # (2B,) candidates
        targets = torch.arange(len(batch.users), device=items.device)
        user = users_all.index_select(0, batch.users)
        embedded = items_all.index_select(0, items)
        encoded = self.encoder(self.content.index_select(0, items))
        # a candidate that is the positive item again (sampled twice) is not a negative: left out
        repeats = (items[None, :] == batch.positive_items[:, None]) & (targets[:, None] != torch.arange(
            len(items), device=items.device)[None, :])
        tau = self.config.temp_value
        cosine = F.normalize(embedded[: len(targets)], dim=1) @ F.normalize(encoded, dim=1).T
        item_content = F.cross_entropy((cosine / tau).masked_fill(repeats, -torch.inf), targets)
        replaced = (torch.rand(len(items), 1, device=items.device) < self.config.num_sample).float()
        mixed = replaced * encoded + (1 - replaced) * embedded
        seen = torch.isin(batch.users[:, None] * self.num_items + items[None, :], self.seen_pairs)  # (B, 2B)
        seen = seen & (targets[:, None] != torch.arange(len(items), device=items.device)[None, :])
        user_item = F.cross_entropy((user @ mixed.T / tau).masked_fill(repeats | seen, -torch.inf), targets)
        reg = 0.5 * (user.norm(dim=1).mean() + embedded.norm(dim=1).mean())
        lam = self.config.lr_lambda
        return lam * item_content + (1 - lam) * user_item + self.config.reg_weight * reg

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        warm = self.backbone.warm
        return Embeddings(users, warm * items + (1 - warm) * self.encoder(self.content))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        return self.encoder(scale_new_content(self.scaler, features, self.content.device))


__all__ = ["CLCRec", "CLCRecConfig"]
