"""GAR. Chen, Wu, Zhang, Zhang & Wang, "Generative Adversarial Framework for Cold-Start Item
Recommendation", SIGIR 2022. https://doi.org/10.1145/3477495.3531897
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from modalrec.config import check_at_least, check_range
from modalrec.errors import ConfigError
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.cold_common import COLDREC_TRAINING, item_content, scale_new_content, warm_backbone
from modalrec.models.registry import register_model
from modalrec.nn import bpr_loss
from modalrec.nn.coldstart import MLP, encode_items, pair_item_scores
from modalrec.nn.precision import TrainingTables, check_precision


@dataclass(frozen=True)
class GARConfig:
    embedding_dim: int = 64  # d, the backbone's (recommender's) vectors
    alpha: float = 0.05  # generator: weight of the squared distance to the real item vector (1 - alpha adversarial)
    beta: float = 0.1  # recommender: weight of the ordinary BPR term (1 - beta: real above generated)
    backbone_layers: int = 0  # 0: an MF backbone trained here; L > 0: LightGCN with L layers
    backbone_run: str = ""  # a finished warm run whose vectors are frozen (then only the generator learns)
    backbone_finetune: bool = False  # with backbone_run: start MF from its vectors and train it on, as ColdRec's GAR
    joint_updates: bool = False  # ColdRec's GAR: L_R's gradient also reaches the generator (not only L_G's)
    reg_weight: float = 1e-4
    modalities: tuple[str, ...] = ()
    standardize: bool = True
    train_precision: str = "auto"  # training-step content products: auto (bfloat16 where native), float32, bfloat16

    def __post_init__(self) -> None:
        check_precision(self.train_precision)
        check_range("model.alpha", self.alpha, low=0, high=1)
        check_range("model.beta", self.beta, low=0, high=1)
        check_at_least("model", 1, embedding_dim=self.embedding_dim)
        if self.backbone_finetune and not self.backbone_run:
            raise ConfigError("model.backbone_finetune", "needs model.backbone_run, the run whose vectors it starts from")


@register_model(
    "gar",
    config=GARConfig,
    description="GAR: a content generator and the recommender trained adversarially on the ranking (cold start)",
    uses_content=True,
    training_defaults=COLDREC_TRAINING,  # with backbone_run (why: docs/benchmarks/notes.md)
    capabilities=Capabilities(dot_product=True, cold_items=True, new_items=True),
)
class GAR(Recommender):
    r"""A generator maps content to item vectors that the recommender should not be able to rank below
    real warm items, while the recommender learns to rank real positives above generated ones.

    With :math:`\mathbf g_i = G(\mathbf x_i)` (a tanh hidden layer, then a linear one) for a positive item :math:`i`:

    .. math::
        \mathcal L_G = (1-\alpha)\,\mathrm{BPR}(\mathbf u^\top\mathbf g_i,\ \mathbf u^\top\mathbf v_i)
                       + \alpha\,\lVert \mathbf g_i - \mathbf v_i \rVert^2, \qquad
        \mathcal L_R = (1-\beta)\,\mathrm{BPR}(\mathbf u^\top\mathbf v_i,\ \mathbf u^\top\mathbf g_i)
                       + \beta\,\mathrm{BPR}(\mathbf u^\top\mathbf v_i,\ \mathbf u^\top\mathbf v_j)

    where :math:`\mathrm{BPR}(a, b) = -\log\sigma(a - b)`. The two players are updated in the same step
    but each only through its own loss (the other side is read without gradient), as in the paper's
    alternating updates. Scores: warm items :math:`\mathbf u^\top\mathbf v_i`, cold items
    :math:`\mathbf u^\top G(\mathbf x_i)`. The recommender is the backbone (trained here, where its plain
    BPR is added, or frozen from ``backbone_run``, where :math:`\mathcal L_R` has nothing to update). With
    ``backbone_finetune`` the backbone starts from ``backbone_run``'s vectors and is trained on as an MF
    backbone, as ColdRec's GAR fine-tunes its pretrained embeddings, so that the recommender can answer the
    generator. With ``joint_updates`` the generator is also trained through :math:`\mathcal L_R` (whose
    first term pushes :math:`\mathbf u^\top\mathbf g_i` down), as in ColdRec's code, where both losses
    reach every parameter in one step; this keeps generated vectors from outscoring real ones, which
    matters when cold and warm items are ranked together.

    Shapes: content (I, F); vectors (U, d), (I, d).
    """

    content: Tensor

    def __init__(self, config: GARConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        self.backbone = warm_backbone("gar", config, inputs, num_layers=config.backbone_layers)
        self.scaler, content = item_content("gar", config, inputs)
        self.register_buffer("content", content, persistent=False)
        self.training_tables = TrainingTables(config.train_precision)
        dim = self.backbone.dim
        self.generator = MLP([content.shape[1], 2 * dim, dim])

    def loss(self, batch: TrainBatch) -> Tensor:
        users_all, items_all = self.backbone.vectors()
        user = users_all.index_select(0, batch.users)
        positive = items_all.index_select(0, batch.positive_items)
        negative = items_all.index_select(0, batch.negative_items)
        generated = encode_items(self.generator, self.training_tables(self.content), batch.positive_items)
        fixed_user, fixed_positive = user.detach(), positive.detach()
        alpha, beta = self.config.alpha, self.config.beta
        generator = (1 - alpha) * bpr_loss(pair_item_scores(fixed_user, generated),
                                           pair_item_scores(fixed_user, fixed_positive))
        generator = generator + alpha * F.mse_loss(generated, fixed_positive, reduction="none").sum(1).mean()
        real = pair_item_scores(user, positive)
        rival = generated if self.config.joint_updates else generated.detach()
        recommender = (1 - beta) * bpr_loss(real, pair_item_scores(user, rival))
        recommender = recommender + beta * bpr_loss(real, pair_item_scores(user, negative))
        backbone = self.backbone.bpr(batch.users, batch.positive_items, batch.negative_items, self.config.reg_weight)
        return backbone + generator + recommender

    def compute_embeddings(self) -> Embeddings:
        users, items = self.backbone.vectors()
        warm = self.backbone.warm
        return Embeddings(users, warm * items + (1 - warm) * self.generator(self.content))

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        return self.generator(scale_new_content(self.scaler, features, self.content.device))


__all__ = ["GAR", "GARConfig"]
