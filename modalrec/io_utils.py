"""Atomic writes: every artefact goes to a temporary file first and is moved into place with os.replace."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; artefacts get the usual permissions
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_with(path: str | Path, writer: Callable[[IO[Any]], object], mode: str = "w") -> None:
    """Write ``path`` atomically by calling ``writer`` on an open temporary file."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
        writer(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_bytes(path: str | Path, data: bytes) -> None:
    write_with(path, lambda handle: handle.write(data), mode="wb")


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda handle: handle.write(text))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    write_with(path, lambda handle: np.save(handle, array), mode="wb")
