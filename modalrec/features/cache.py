"""On-disk feature cache keyed by the extractor's fingerprint and a hash of each item's content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from modalrec.features.base import Content, ContentError
from modalrec.io_utils import write_npy

HASH_CHUNK = 1 << 20


def content_hash(content: Content) -> str:
    """SHA-256 of a text, or of a file's bytes (so renaming a file keeps its cache entry)."""
    digest = hashlib.sha256()
    if isinstance(content, str):
        digest.update(b"text:" + content.encode("utf-8"))
        return digest.hexdigest()
    try:
        with open(content, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ContentError(f"cannot read {content}: {exc.strerror or exc}") from None
    return digest.hexdigest()


class FeatureCache:
    """``root/<extractor>-<fingerprint>/<hash[:2]>/<hash>.npy``: one vector per distinct content."""

    def __init__(self, root: str | Path, extractor_name: str, fingerprint: str) -> None:
        self.folder = Path(root) / f"{extractor_name}-{fingerprint}"

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None  # a damaged entry is recomputed

    def put(self, key: str, vector: np.ndarray) -> None:
        """Store atomically: a write cut short leaves no entry (only a hidden ``.tmp`` file), never a torn one.

        Not flushed to disk: an entry lost to a power cut is recomputed.
        """
        write_npy(self._path(key), np.asarray(vector, dtype=np.float32), durable=False)
