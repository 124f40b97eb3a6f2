"""The model registry: names -> (class, config dataclass, one-line description, capabilities)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from modalrec.errors import ModalrecError, UnknownNameError
from modalrec.models.capabilities import Capabilities

if TYPE_CHECKING:
    from modalrec.models.base import Recommender

M = TypeVar("M", bound=type)
# train settings a model needs: fixed, or chosen from its config (e.g. MMDFM's learning rate per fusion mode)
TrainingDefaults = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]
# what a model can do: fixed, or a function of its config (e.g. MMAL's user_item attention does not factor)
CapabilityDeclaration = Capabilities | Callable[[Any], Capabilities]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type
    config_class: type
    description: str
    uses_content: bool
    # train settings this model needs, used where the user's config file and --set leave them unset
    training_defaults: TrainingDefaults = field(default_factory=dict)
    declared_capabilities: CapabilityDeclaration = Capabilities()

    @property
    def capabilities(self) -> Capabilities:
        """What the model can do with its default config; :meth:`capabilities_for` for another config."""
        return self.capabilities_for()

    def capabilities_for(self, model_config: Any = None) -> Capabilities:
        """What the model can do with ``model_config`` (None: the model's default config)."""
        if isinstance(self.declared_capabilities, Capabilities):
            return self.declared_capabilities
        return self.declared_capabilities(self.config_class() if model_config is None else model_config)

    def search_space(self) -> Mapping[str, Any]:
        """The config class's own search space (its ``search_space`` class attribute); {} when it declares none."""
        space: Mapping[str, Any] = getattr(self.config_class, "search_space") if self.capabilities.search_space else {}
        return space

    def defaults_for(self, model_config: Any = None) -> Mapping[str, Any]:
        """This model's training defaults for ``model_config`` (None: the model's default config)."""
        if not callable(self.training_defaults):
            return self.training_defaults
        return self.training_defaults(self.config_class() if model_config is None else model_config)

    def train_section(self, chosen: Mapping[str, Any], model_config: Any = None) -> dict[str, Any]:
        """The ``train`` settings the user chose, over this model's training defaults for ``model_config``."""
        return {**self.defaults_for(model_config), **chosen}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    config: type,
    description: str,
    uses_content: bool = False,
    training_defaults: TrainingDefaults | None = None,
    capabilities: CapabilityDeclaration = Capabilities(),
) -> Callable[[M], M]:
    """Class decorator adding a model under ``name``; registering a name twice is an error.

    ``training_defaults`` are ``train`` settings (e.g. ``{"learning_rate": 0.002}``) that replace the
    Trainer's defaults for this model only, or a function of the model's config that returns them; a config
    file or ``--set`` still overrides them.

    ``capabilities`` says what the model can do beyond ``loss`` and ``score`` (see :class:`Capabilities`), or is
    a function of the model's config that says it. A config class with a ``search_space`` attribute must
    declare ``search_space=True``, and only such a class may.
    """

    def decorator(cls: M) -> M:
        if name in _REGISTRY:
            raise ModalrecError(f"the model '{name}' is already registered by {_REGISTRY[name].model_class.__name__}")
        cls.name = name  # type: ignore[attr-defined]
        defaults = training_defaults if callable(training_defaults) else dict(training_defaults or {})
        entry = ModelEntry(name, cls, config, description, uses_content, defaults, capabilities)
        if entry.capabilities.search_space != hasattr(config, "search_space"):
            raise ModalrecError(f"the model '{name}': capabilities say search_space="
                                f"{entry.capabilities.search_space}, but {config.__name__} "
                                f"{'has' if hasattr(config, 'search_space') else 'has no'} search_space attribute")
        _REGISTRY[name] = entry
        return cls

    return decorator


def get_model(name: str) -> ModelEntry:
    """The entry registered under ``name``, in any letter case (``FREEDOM`` is ``freedom``).

    Raises:
        UnknownNameError: listing the models, with the closest one for a typo.
    """
    _load_builtin_models()
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise UnknownNameError("model", name, _REGISTRY)
    return _REGISTRY[key]


def capabilities_of(model: Recommender[Any]) -> Capabilities:
    """What this model instance can do, for its own config."""
    return get_model(model.name).capabilities_for(model.config)


def available_models() -> list[ModelEntry]:
    _load_builtin_models()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def _load_builtin_models() -> None:
    import modalrec.models  # noqa: F401  (importing the package registers every built-in model)
