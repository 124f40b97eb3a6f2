"""A lock file that stops two processes from writing the same run folder at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from modalrec.io_utils import exclusive_lock

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` for the duration; a lock left by a dead process on this host is taken over.

    Raises:
        RunFolderError: If another live process holds the lock, or the folder cannot be written
            (read-only, no permission, disk full).
    """
    with exclusive_lock(folder / LOCK_NAME, folder, "the run folder"):
        yield
