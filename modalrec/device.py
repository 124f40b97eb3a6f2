"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``): one syntax for every command and setting."""

from __future__ import annotations

import torch

from modalrec.errors import ConfigError, ModalrecError

DEVICE_HELP = "auto (a GPU when present), cpu, cuda or cuda:N"


def check_device_name(name: str, key: str = "device") -> str:
    """``name`` when it is a valid device name; a ConfigError naming ``key`` otherwise."""
    if not (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ConfigError(key, f"expected {DEVICE_HELP}, got '{name}'")
    return name


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a CUDA name without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModalrecError(f"device={name} but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)
