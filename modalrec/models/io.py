"""Saving and loading a model: its registry name, its config and its learned state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from modalrec.config import build
from modalrec.errors import NotFittedError
from modalrec.io_utils import write_torch
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
    payload = torch.load(path, map_location="cpu", weights_only=True)
    entry = get_model(payload["model"])
    model: Recommender = entry.model_class(build(entry.config_class, payload["config"], section="model"), inputs)
    model.load_state_dict(payload["state"])
    return model.to(device).eval()
