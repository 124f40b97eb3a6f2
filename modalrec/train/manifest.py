"""The run manifest: everything a run was made from, so that its numbers can be reproduced and compared.

``manifest.json`` in a run folder holds:

- ``manifest_version``, ``status`` (``running`` until ``metrics.json`` is written, then ``complete``),
  ``started`` and ``finished`` (UTC, ISO 8601), ``resumed`` (one UTC time per ``train --resume``),
  ``command`` (the command line);
- ``config``: the full resolved config, as in ``config.json``;
- ``data``: the data path and, for each file read, its ``name`` (relative to the data folder), ``bytes`` and
  ``sha256``;
- ``split``: the method, ``split_seed``, the train/valid/test counts and a SHA-256 of the split's index arrays;
- ``seed``: the training seed;
- ``versions``: python, modalrec and every declared dependency (None when not installed);
- ``git``: ``commit`` and ``dirty`` of the modalrec source tree when it is a git checkout, else None;
- ``environment``: ``device`` (and its name on CUDA), torch ``threads`` and ``interop_threads``, ``cpus``,
  ``OMP_NUM_THREADS``, ``deterministic_algorithms``, ``world_size``, ``platform``, ``machine``.

The functions take plain values (the config as a dict) so that :mod:`modalrec.train.run` can use them
without an import cycle.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import modalrec
from modalrec.data.dataset import Dataset
from modalrec.data.split import Split
from modalrec.errors import RunFolderError
from modalrec.io_utils import read_json, write_json

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
HASH_CHUNK = 1 << 20
GIT_TIMEOUT_SECONDS = 5
FALLBACK_PACKAGES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "faiss-cpu")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Data and split

def data_file_paths(data_path: Path, dataset: Dataset) -> list[Path]:
    """The files a run read: every visible file of the data folder (or the given file) plus feature sources."""
    paths = set()
    if data_path.is_dir():
        paths |= {p for p in data_path.iterdir() if p.is_file() and not p.name.startswith(".")}
    elif data_path.is_file():
        paths.add(data_path)
    sources = [dataset.source, *(table.source for table in dataset.features.values())]
    paths |= {Path(source) for source in sources if source and Path(source).is_file()}
    return sorted(paths, key=lambda p: str(p))


def describe_data_files(data_path: Path, dataset: Dataset) -> list[dict[str, Any]]:
    """``name`` (relative to the data folder where possible), ``bytes`` and ``sha256`` of each file read."""
    root = data_path if data_path.is_dir() else data_path.parent
    return [
        {"name": _relative_name(path, root), "bytes": path.stat().st_size, "sha256": sha256_of_file(path)}
        for path in data_file_paths(data_path, dataset)
    ]


def _relative_name(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def describe_split(split: Split, split_seed: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    for part in ("train", "valid", "test"):
        for axis in ("users", "items"):
            digest.update(np.ascontiguousarray(getattr(getattr(split, part), axis), dtype=np.int64).tobytes())
    return {"method": split.method, "split_seed": split_seed, **split.counts(), "sha256": digest.hexdigest()}


def changed_data_files(recorded: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[str]:
    """Names of files added, removed or changed between two ``data.files`` lists."""
    before = {entry["name"]: entry["sha256"] for entry in recorded}
    after = {entry["name"]: entry["sha256"] for entry in current}
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


# ---------------------------------------------------------------------------------------------
# Software and machine

def package_versions() -> dict[str, str | None]:
    """python, modalrec and each runtime dependency modalrec declares (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "modalrec": modalrec.__version__}
    for name in _declared_dependencies():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _declared_dependencies() -> list[str]:
    try:
        requirements = importlib.metadata.requires("modalrec") or []
    except importlib.metadata.PackageNotFoundError:
        return list(FALLBACK_PACKAGES)
    names = [re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
             for requirement in requirements if "extra ==" not in requirement]
    return sorted(dict.fromkeys(name for name in names if name), key=str.lower)


def git_state(source: Path | None = None) -> dict[str, Any] | None:
    """``commit`` and ``dirty`` (sources differ from it) of the modalrec checkout; None if not a git checkout."""
    folder = source or Path(modalrec.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.SubprocessError):
            return None  # git missing, or hanging
        return done.stdout.strip() if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:  # an installed copy, not the checkout
        return None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "dirty": bool(changes)}


def environment(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    details: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        details["device_name"] = torch.cuda.get_device_name(device)
        details["cuda"] = torch.version.cuda
    details |= {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "world_size": world_size,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    return details


# ---------------------------------------------------------------------------------------------
# The document

def new_manifest(config: dict[str, Any], dataset: Dataset, split: Split, device: torch.device,
                 world_size: int = 1) -> dict[str, Any]:
    """The manifest of a run about to train (``status`` running)."""
    data_path = Path(config["data_path"])
    return {
        "manifest_version": MANIFEST_VERSION,
        "status": "running",
        "started": utc_now(),
        "finished": None,
        "resumed": [],
        "command": list(sys.argv),
        "config": config,
        "data": {"path": str(data_path), "files": describe_data_files(data_path, dataset)},
        "split": describe_split(split, int(config["data"]["split_seed"])),
        "seed": config["seed"],
        "versions": package_versions(),
        "git": git_state(),
        "environment": environment(device, world_size),
    }


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or None for runs made before manifests existed."""
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise RunFolderError(f"{path}: expected a JSON object")
    return manifest


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json(run_dir / MANIFEST_FILE, manifest)


def mark_resumed(manifest: dict[str, Any], device: torch.device, world_size: int = 1) -> None:
    """Record a resume; versions or environment that changed since the start are noted with it."""
    entry: dict[str, Any] = {"at": utc_now()}
    versions, env = package_versions(), environment(device, world_size)
    if versions != manifest.get("versions"):
        entry["versions"] = versions
    if env != manifest.get("environment"):
        entry["environment"] = env
    manifest.setdefault("resumed", []).append(entry)
    manifest["status"] = "running"


def mark_finished(manifest: dict[str, Any]) -> None:
    manifest["status"] = "complete"
    manifest["finished"] = utc_now()


__all__ = ["MANIFEST_FILE", "new_manifest", "read_manifest", "write_manifest"]
