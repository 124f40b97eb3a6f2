"""The model contract: every recommender implements ``loss`` and ``score``; most also ``embeddings``."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modalrec.errors import ModalrecError
from modalrec.models.scoring import DotProductScores, ScoreFn


class NotSupported(ModalrecError):
    """The model does not offer this operation."""


@dataclass(frozen=True)
class ModelInputs:
    """What a model is built from: sizes, the training graph and item features. Never file paths."""

    num_users: int
    num_items: int
    train_users: Tensor  # (E,) long
    train_items: Tensor  # (E,) long
    features: dict[str, Tensor]  # modality -> (num_items, dim) float32


@dataclass(frozen=True)
class TrainBatch:
    """A batch of BPR triples: user, positive item, sampled negative item. Each (B,) long."""

    users: Tensor
    positive_items: Tensor
    negative_items: Tensor

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(self.users.to(device), self.positive_items.to(device), self.negative_items.to(device))


@dataclass(frozen=True)
class Embeddings:
    """User and item vectors with ``score == users @ items.T``. Shapes: (U, d), (I, d)."""

    users: Tensor
    items: Tensor


class Recommender(nn.Module, abc.ABC):
    """Scores users against items. Subclasses define ``loss`` and either ``compute_embeddings`` or ``score``.

    In eval mode the embeddings are computed once and cached until the model trains or loads weights.
    """

    name: ClassVar[str] = ""
    config: Any

    def __init__(self, config: Any, inputs: ModelInputs) -> None:
        super().__init__()
        self.config = config
        self.num_users = inputs.num_users
        self.num_items = inputs.num_items
        self._cached_embeddings: Embeddings | None = None

    @abc.abstractmethod
    def loss(self, batch: TrainBatch) -> Tensor:
        """Scalar training loss for one batch, regularisation included."""

    def compute_embeddings(self) -> Embeddings:
        """User and item vectors for which the score is their dot product."""
        raise NotSupported(f"{type(self).__name__} does not factor into dot products")

    def content_item_vectors(self, features: dict[str, Tensor]) -> Tensor:
        """Item vectors for new items from their raw content features alone, comparable with
        ``embeddings().items`` (so a brand-new item is recommendable without retraining).

        Shapes: {modality: (N, F_m)} -> (N, d).
        """
        raise NotSupported(f"{type(self).__name__} cannot embed new items from content")

    def embeddings(self) -> Embeddings:
        """``compute_embeddings()``, cached while the model is in eval mode."""
        if self.training:
            return self.compute_embeddings()
        if self._cached_embeddings is None:
            with torch.no_grad():
                self._cached_embeddings = self.compute_embeddings()
        return self._cached_embeddings

    def score(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        """Scores of shape (len(users), len(items)), or (len(users), num_items) when items is None."""
        vectors = self.embeddings()
        item_vectors = vectors.items if items is None else vectors.items[items]
        return vectors.users[users] @ item_vectors.T

    def ranking_scorer(self) -> ScoreFn:
        """``users -> scores over all items``, for the evaluator: when ``score`` is the dot product of
        ``embeddings()``, the :class:`DotProductScores` of those embeddings, which the evaluator computes into
        a buffer of its own. Call it in eval mode."""
        if type(self).score is Recommender.score:
            try:
                vectors = self.embeddings()
            except NotSupported:
                pass
            else:
                return DotProductScores(vectors.users, vectors.items)
        return self.score

    def train(self, mode: bool = True) -> Recommender:
        self._cached_embeddings = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._cached_embeddings = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
