"""CLCRec. Wei, Wang, Li, Nie, Li, Li & Chua, "Contrastive Learning for Cold-Start Recommendation",
ACM Multimedia 2021. https://arxiv.org/abs/2107.05315
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.config import check_at_least, check_range
from modalrec.data.sampler import sorted_contains
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import COLDREC_TRAINING, item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn.coldstart import encode_items
from modalrec.nn.precision import ContentLinear, TrainingTables, check_precision


@dataclass(frozen=True)
class CLCRecConfig:
    embedding_dim: int = 64  # d, user and item ID embeddings
    hidden_dim: int = 256  # the content encoder's hidden width
    temp_value: float = 2.0  # tau, the temperature of both contrastive losses
    lr_lambda: float = 0.5  # lambda, weight of the item-content loss (1 - lambda on the user-item loss)
    num_sample: float = 0.5  # rho, the share of the batch's item embeddings replaced by encoded content
    reg_weight: float = 1e-3  # weight of the mean L2 norm of the batch's ID embeddings
    contrast_size: int = 256  # n: the batch is contrasted in groups of n triples (each positive against 2n items)
    backbone_run: str = ""  # a finished warm run whose vectors are frozen in place of the ID embeddings
    modalities: tuple[str, ...] = ()
    standardize: bool = True
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_precision(self.train_precision)
        check_range("model.temp_value", self.temp_value, low=0, low_open=True)
        check_range("model.lr_lambda", self.lr_lambda, low=0, high=1)
        check_range("model.num_sample", self.num_sample, low=0, high=1)
        check_at_least("model", 1, contrast_size=self.contrast_size)


@register_model(
    "clcrec",
    config=CLCRecConfig,
    description="CLCRec: contrastive user-item and item-content objectives; cold items scored from encoded content",
    uses_content=True,
    training_defaults=COLDREC_TRAINING,  # with backbone_run (why: docs/benchmarks/notes.md)
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

    with :math:`j` over the positive and negative items of the triple's group of ``contrast_size`` in
    the batch (less the user's other training items and repeats of the positive, not negatives) and :math:`\tilde{\mathbf v}_j` the ID
    embedding or, for a share :math:`\rho` of the rows, :math:`\mathbf c_j`. Scores: warm items
    :math:`\mathbf u^\top\mathbf v_i`, cold items :math:`\mathbf u^\top\mathbf c_i`.

    Shapes: content (I, F); embeddings (U, d), (I, d).
    """

    content: Tensor

    def __init__(self, config: CLCRecConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("clcrec", config, inputs)
        self.scaler, content = item_content("clcrec", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.seen = TrainingPairs(inputs.num_users, inputs.num_items, inputs.train_users, inputs.train_items)
        self.training_tables = TrainingTables(config.train_precision)
        self.encoder = nn.Sequential(ContentLinear(content.shape[1], config.hidden_dim), nn.LeakyReLU(),
                                     nn.Linear(config.hidden_dim, self.backbone.dim))

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        size, count = self.config.contrast_size, len(batch.users)
        encoded = encode_items(self.encoder, self.training_tables(self.content),
                               torch.cat([batch.positive_items, batch.negative_items]))
        groups = [slice(start, min(start + size, count)) for start in range(0, count, size)]
        parts = [self.contrastive_losses(users_all, items_all, batch.users[g], batch.positive_items[g],
                                         batch.negative_items[g],
                                         torch.cat([encoded[g], encoded[count + g.start:count + g.stop]]))
                 for g in groups]
        lam, weights = self.config.lr_lambda, [g.stop - g.start for g in groups]
        total = sum((w * (lam * ic + (1 - lam) * ui) for w, (ic, ui) in zip(weights, parts, strict=True)),
                    users_all.new_zeros(()))
        user, embedded = users_all.index_select(0, batch.users), items_all.index_select(0, batch.positive_items)
        reg = 0.5 * (user.norm(dim=1).mean() + embedded.norm(dim=1).mean())
        return total / len(batch.users) + self.config.reg_weight * reg

    def contrastive_losses(self, users_all: Tensor, items_all: Tensor, users: Tensor, positives: Tensor,
                           negatives: Tensor, encoded: Tensor) -> tuple[Tensor, Tensor]:
        """(L_ie, L_ui) over one group of triples, each positive contrasted with the group's 2n items, whose
        encoded content is ``encoded`` (positives first)."""
        items = torch.cat([positives, negatives])  # (2n,) candidates
        targets = torch.arange(len(users), device=items.device)
        others = targets[:, None] != torch.arange(len(items), device=items.device)[None, :]  # (n, 2n)
        user, embedded = users_all.index_select(0, users), items_all.index_select(0, items)
        # the positive item again (sampled twice), or another item the user has, is not a negative: left out
        repeats = (items[None, :] == positives[:, None]) & others
        seen = self.seen.contains(users[:, None], items[None, :]) & others
        tau = self.config.temp_value
        cosine = F.normalize(embedded[: len(targets)], dim=1) @ F.normalize(encoded, dim=1).T
        item_content = F.cross_entropy((cosine / tau).masked_fill(repeats, -torch.inf), targets)
        replaced = (torch.rand(len(items), 1, device=items.device) < self.config.num_sample).float()
        mixed = replaced * encoded + (1 - replaced) * embedded
        user_item = F.cross_entropy((user @ mixed.T / tau).masked_fill(repeats | seen, -torch.inf), targets)
        return item_content, user_item

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        warm = self.backbone.warm
        return Embeddings(users, warm * items + (1 - warm) * self.encoder(self.content))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        return self.encoder(scale_new_content(self.scaler, features, self.content.device))


class TrainingPairs(nn.Module):
    """Which (user, item) pairs are training interactions: a dense (U, I) table while it has at most
    ``DENSE_CELLS`` cells (one lookup per query), else the sorted codes ``user * I + item`` (one binary search
    per query). Either is much cheaper than ``torch.isin``, which sorts the queries with the set at every call."""

    DENSE_CELLS = 1 << 27  # 128 MiB of bools

    table: Tensor
    codes: Tensor

    def __init__(self, num_users: int, num_items: int, users: Tensor, items: Tensor) -> None:
        super().__init__()
        self.num_items = num_items
        self.dense = num_users * num_items <= self.DENSE_CELLS
        if self.dense:
            table = torch.zeros(num_users, num_items, dtype=torch.bool)
            table[users.long(), items.long()] = True
            self.register_buffer("table", table, persistent=False)
        else:
            self.register_buffer("codes", torch.unique(users.long() * num_items + items.long()), persistent=False)

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """Shapes: users, items broadcastable long tensors -> their broadcast shape, bool."""
        if self.dense:
            return self.table[users, items]
        codes = users * self.num_items + items
        if not len(self.codes):
            return torch.zeros_like(codes, dtype=torch.bool)
        return sorted_contains(self.codes, codes)


__all__ = ["CLCRec", "CLCRecConfig", "TrainingPairs"]
