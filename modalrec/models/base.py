"""The model contract: every recommender implements ``loss`` and ``score``; most also ``embeddings``.

What a model offers beyond that (dot-product embeddings, content vectors for new items, modality weights...)
is declared once in its registration (:class:`~modalrec.models.capabilities.Capabilities`); callers ask
:func:`~modalrec.models.registry.capabilities_of`, never the model itself.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn

from modalrec.errors import ModalrecError
from modalrec.models.scoring import DotProductScores, ScoreFn

ConfigT = TypeVar("ConfigT")


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
    # a finished warm run's vectors, for models with ``backbone_run`` set (loaded by the train layer)
    backbone: Embeddings | None = None


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


class Recommender(nn.Module, abc.ABC, Generic[ConfigT]):
    """Scores users against items. Subclasses define ``loss`` and either ``compute_embeddings`` or ``score``,
    and name their config type (``class BPR(Recommender[BPRConfig])``) so that ``self.config`` is typed.

    In eval mode the embeddings are computed once and cached until the model trains or loads weights.
    """

    name: ClassVar[str] = ""
    config: ConfigT
    modalities: list[str]  # the content modalities the model reads, in order; [] when it reads none or says not
    modality_names: list[str]  # the sources modality_weights orders its weights by (the modality_weights capability)

    def __init__(self, config: ConfigT, inputs: ModelInputs) -> None:
        super().__init__()
        self.config = config
        self.num_users = inputs.num_users
        self.num_items = inputs.num_items
        self.modalities = []
        self.modality_names = []
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

    def modality_weights(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        """Weight of each source (ordered as ``modality_names``) in each user's score of each item; rows sum to 1.

        Shapes: users (B,), items (N,) or None for all -> (B, N, len(modality_names)).
        """
        raise NotSupported(f"{type(self).__name__} has no modality weights")

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
        """``users -> scores over all items``, for the evaluator: for a model declaring the ``dot_product``
        capability, the :class:`DotProductScores` of ``embeddings()``, which the evaluator computes into a buffer
        of its own; else ``score``. Call it in eval mode."""
        from modalrec.models.registry import capabilities_of  # the registry imports this module

        if capabilities_of(self).dot_product:
            vectors = self.embeddings()
            return DotProductScores(vectors.users, vectors.items)
        return self.score

    def train(self, mode: bool = True) -> Recommender[ConfigT]:
        self._cached_embeddings = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._cached_embeddings = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
