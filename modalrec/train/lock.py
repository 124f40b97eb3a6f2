"""A lock file that stops two processes from writing the same run folder at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from modalrec.errors import RunFolderError
from modalrec.io_utils import acquire_lock

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` for the duration; a lock left by a dead process on this host is taken over.

    Raises:
        RunFolderError: If another live process holds the lock, or the folder cannot be written
            (read-only, no permission, disk full).
    """
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _acquire(path)
    except OSError as exc:
        raise RunFolderError(f"{folder}: cannot write the run folder: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _acquire(path: Path) -> None:
    acquire_lock(path, path.parent)
