"""Atomic writes: every artefact goes to a temporary file first and is moved into place with os.replace.

A reader therefore sees either the previous version of a file or the new one, never a mix: a crash, a
``kill -9`` or a full disk in the middle of a write leaves the previous version in place and at most a hidden
``.<name>.<random>.tmp`` file beside it, which :func:`remove_temporary_files` clears and which no reader
mistakes for the real file. Failures to write raise :class:`~modalrec.errors.WriteError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from modalrec.errors import RunFolderError, WriteError

TEMP_SUFFIX = ".tmp"
EMPTY_LOCK_SECONDS = 5.0
"""A lock file still empty after this long was left by a process killed between creating and naming it."""


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    With ``durable`` the new file and the folder entry are flushed to disk before returning, so the new
    version also survives a power cut; caches pass False (a lost entry is only recomputed).

    Raises:
        WriteError: If the folder cannot be created or written (disk full, read-only, no permission);
            ``path`` keeps its earlier content and the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; artefacts get the usual permissions
        os.close(fd)
    except OSError as exc:
        raise WriteError(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync_folder(path.parent)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from None
    except Exception as exc:
        cause = _os_error_behind(exc)
        if cause is None:
            raise
        raise WriteError(path, cause) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _os_error_behind(error: BaseException) -> OSError | None:
    """The OSError another error was raised while handling, if any.

    torch.save, for one, reports a full disk as a RuntimeError ("unexpected pos") raised while closing the
    archive after the ENOSPC.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; skipped where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(descriptor)


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that writes killed midway left in ``folder``.

    Call it only while no other process writes to ``folder`` (the run-folder lock ensures that).
    """
    removed = []
    for leftover in sorted(Path(folder).glob(f".*{TEMP_SUFFIX}")):
        if leftover.is_file():
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def write_with(path: str | Path, writer: Callable[[IO[Any]], object], mode: str = "w", *,
               durable: bool = True) -> None:
    """Write ``path`` atomically by calling ``writer`` on an open temporary file."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path, durable=durable) as tmp, open(tmp, mode, encoding=encoding) as handle:
        writer(handle)


def write_bytes(path: str | Path, data: bytes) -> None:
    write_with(path, lambda handle: handle.write(data), mode="wb")


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda handle: handle.write(text))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npy(path: str | Path, array: np.ndarray, *, durable: bool = True) -> None:
    write_with(path, lambda handle: np.save(handle, array), mode="wb", durable=durable)


def read_json(path: str | Path) -> Any:
    """A JSON file modalrec wrote (config, metrics, manifest); RunFolderError if it is damaged or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read as JSON ({exc})") from None


def read_torch(path: str | Path, *, map_location: Any = "cpu", weights_only: bool = True) -> Any:
    """A ``torch.save`` file modalrec wrote (weights, checkpoint); RunFolderError if it is damaged."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunFolderError(f"{path}: cannot be read ({reason})") from None


def write_torch(path: str | Path, payload: Any) -> None:
    """``torch.save`` atomically. Through a Python file object, so that a full disk surfaces as ENOSPC (torch's
    own file writer reports only an opaque RuntimeError)."""
    import torch

    write_with(path, lambda handle: torch.save(payload, handle), mode="wb")


@contextlib.contextmanager
def exclusive_lock(path: Path, subject: Path, what: str = "there") -> Iterator[None]:
    """Hold the lock file ``path`` (guarding ``subject``) for the duration; see :func:`acquire_lock`.

    Raises:
        RunFolderError: If another live process holds it, or it cannot be written (read-only, no permission):
            "``subject``: cannot write ``what``: the reason".
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        acquire_lock(path, subject)
    except OSError as exc:
        raise RunFolderError(f"{subject}: cannot write {what}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def acquire_lock(path: Path, subject: Path) -> None:
    """Create ``path`` holding ``<host> <pid>``; a lock left by a dead process on this host is taken over."""
    owner = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not lock_is_stale(path):
                holder = path.read_text(errors="replace").strip() or "another process"
                raise RunFolderError(
                    f"{subject}: is being written by {holder}; wait for it to finish, or delete {path} "
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
    raise RunFolderError(f"{subject}: could not take the lock {path}")


def lock_is_stale(path: Path) -> bool:
    """Whether the lock ``path`` was left by a process of this host that is gone."""
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
