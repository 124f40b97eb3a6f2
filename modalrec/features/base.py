"""The extractor interface and its registry.

An extractor turns one modality's raw content (an image, video or audio file path, or a text) into a
fixed-size float vector. It works in two steps so that one unreadable item never spoils a batch:
``load(content)`` reads and prepares a single item (raising :class:`ContentError` when it cannot), and
``embed(prepared)`` turns a batch of prepared items into a ``(B, dim)`` float32 array.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from modalrec.config import build
from modalrec.errors import ModalrecError, UnknownNameError

Content = Path | str  # a file path (image, video, audio) or a text
MODALITY_KINDS = ("image", "text", "video", "audio")


class ContentError(ModalrecError):
    """One item's content cannot be used (unreadable, corrupt, empty); the item gets the missing fill."""


class Extractor(abc.ABC):
    """Turns a batch of one modality's raw content into fixed-size float vectors.

    Subclasses set ``name``, ``kind`` (image, text, video or audio) and ``version`` (bump it when the output
    changes, so cached features are recomputed), take their typed config and a device, and implement
    ``dim``, ``load`` and ``embed``.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    corpus_dependent: ClassVar[bool] = False  # True when one item's vector depends on the others (TF-IDF)

    def __init__(self, config: Any, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of every output vector."""

    def fit(self, contents: Sequence[Content]) -> None:
        """Learn from every item's content before embedding (corpus-level extractors only); default no-op."""

    @abc.abstractmethod
    def load(self, content: Content) -> Any:
        """Read and prepare one item; raise :class:`ContentError` with the reason when it cannot."""

    @abc.abstractmethod
    def embed(self, prepared: Sequence[Any]) -> np.ndarray:
        """Vectors of shape (len(prepared), dim), float32."""

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output: name, version and config. Keys the cache and the manifest."""
        return {"name": self.name, "version": self.version, "config": dataclasses.asdict(self.config)}

    def fingerprint(self) -> str:
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ExtractorEntry:
    name: str
    extractor_class: type[Extractor]
    config_class: type
    kind: str
    description: str


_REGISTRY: dict[str, ExtractorEntry] = {}
E = TypeVar("E", bound=type[Extractor])


def register_extractor(name: str, *, kind: str, config: type, description: str) -> Callable[[E], E]:
    """Class decorator adding an extractor under ``name``; registering a name twice is an error."""
    if kind not in MODALITY_KINDS:
        raise ModalrecError(f"extractor '{name}': kind must be one of {', '.join(MODALITY_KINDS)}, got '{kind}'")

    def decorator(cls: E) -> E:
        if name in _REGISTRY:
            raise ModalrecError(f"the extractor '{name}' is already registered")
        cls.name = name
        cls.kind = kind
        _REGISTRY[name] = ExtractorEntry(name, cls, config, kind, description)
        return cls

    return decorator


def get_extractor(name: str) -> ExtractorEntry:
    _load_builtin_extractors()
    if name not in _REGISTRY:
        raise UnknownNameError("extractor", name, _REGISTRY)
    return _REGISTRY[name]


def available_extractors(kind: str | None = None) -> list[ExtractorEntry]:
    _load_builtin_extractors()
    return [_REGISTRY[n] for n in sorted(_REGISTRY) if kind is None or _REGISTRY[n].kind == kind]


def create_extractor(
    name: str, settings: dict[str, Any] | None = None, device: torch.device | str = "cpu"
) -> Extractor:
    """Instantiate a registered extractor; ``settings`` are checked against its config dataclass."""
    entry = get_extractor(name)
    config: Any = build(entry.config_class, settings or {}, section=f"extractor.{name}")
    return entry.extractor_class(config, device)


def _load_builtin_extractors() -> None:
    import modalrec.features.extractors  # noqa: F401  (importing the package registers the built-ins)
