"""modalrec: multimodal recommendation from interactions and item content.

The public Python API (:mod:`modalrec.api`) is exported here and imported on first use, so that
``import modalrec.errors`` (or the command line) does not pay for torch and pandas it may not need.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("Dataset", "Run", "available_models", "benchmark", "benchmark_protocol", "load_dataset", "load_run",
        "run_demo", "train")

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # the names as type checkers and IDEs see them
    from modalrec.api import (Dataset, Run, available_models, benchmark, benchmark_protocol, load_dataset, load_run,
                              run_demo, train)


class _TrainPackage(types.ModuleType):
    """The ``modalrec.train`` subpackage, which is also the API's ``train`` function when called."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Train one model and write a run folder: :func:`modalrec.api.train`."""
        return importlib.import_module("modalrec.api").train(*args, **kwargs)


class _Package(types.ModuleType):
    """The root package. ``modalrec.train`` names both the subpackage (``modalrec.train.run``) and the
    API function (``modalrec.train(dataset, "vbpr")``): the import system sets the subpackage here, and
    it is made callable as it arrives."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and type(value) is types.ModuleType:
            value.__class__ = _TrainPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "train":
        return importlib.import_module("modalrec.train")  # set here, made callable, by the import
    if name in _API:
        return getattr(importlib.import_module("modalrec.api"), name)
    raise AttributeError(f"module 'modalrec' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
