"""The model registry: names -> (class, config dataclass, one-line description)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from modalrec.errors import ModalrecError, UnknownNameError

M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type
    config_class: type
    description: str
    uses_content: bool


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, config: type, description: str, uses_content: bool = False) -> Callable[[M], M]:
    """Class decorator adding a model under ``name``; registering a name twice is an error."""

    def decorator(cls: M) -> M:
        if name in _REGISTRY:
            raise ModalrecError(f"the model '{name}' is already registered by {_REGISTRY[name].model_class.__name__}")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = ModelEntry(name, cls, config, description, uses_content)
        return cls

    return decorator


def get_model(name: str) -> ModelEntry:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise UnknownNameError("model", name, _REGISTRY)
    return _REGISTRY[name]


def available_models() -> list[ModelEntry]:
    _load_builtin_models()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def _load_builtin_models() -> None:
    import modalrec.models  # noqa: F401  (importing the package registers every built-in model)
