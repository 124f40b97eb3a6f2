"""Saving and loading a model: its registry name, its config and its learned state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from modalrec.config import build
from modalrec.errors import NotFittedError, RunFolderError
from modalrec.io_utils import read_torch, write_torch
from modalrec.models.base import ModelInputs, Recommender
from modalrec.models.registry import get_model


def save_model(model: Recommender, path: str | Path) -> None:
    payload = {"model": model.name, "config": dataclasses.asdict(model.config), "state": model.state_dict()}
    write_torch(path, payload)


def load_model(path: str | Path, inputs: ModelInputs, device: torch.device | str = "cpu") -> Recommender:
    """Rebuild the model from ``inputs`` and load its saved state (buffers such as graphs are rebuilt)."""
    path = Path(path)
    if not path.is_file():
        raise NotFittedError(f"{path}: no saved model")
    payload = read_torch(path)
    if not isinstance(payload, dict) or not {"model", "config", "state"} <= payload.keys():
        raise RunFolderError(f"{path}: not a modalrec model file (expected model, config and state)")
    entry = get_model(payload["model"])
    model: Recommender = entry.model_class(build(entry.config_class, payload["config"], section="model"), inputs)
    model.load_state_dict(payload["state"])
    return model.to(device).eval()
