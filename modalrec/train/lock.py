"""A lock file that stops two processes from writing the same run folder at once."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from modalrec.errors import RunFolderError

LOCK_NAME = ".lock"
EMPTY_LOCK_SECONDS = 5.0


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
    owner = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _stale(path):
                holder = path.read_text(errors="replace").strip() or "another process"
                raise RunFolderError(
                    f"{path.parent}: is being written by {holder}; wait for it to finish, or delete {path} "
                    "if that process is gone"
                ) from None
            path.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(owner)
        except OSError:
            path.unlink(missing_ok=True)  # an empty lock would block the folder for good
            raise
        return
    raise RunFolderError(f"{path.parent}: could not take the lock {path}")


def _stale(path: Path) -> bool:
    try:
        owner = path.read_text()
        if not owner:  # the owner was killed between creating the lock and writing its name
            return time.time() - path.stat().st_mtime > EMPTY_LOCK_SECONDS
        host, pid = owner.split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
