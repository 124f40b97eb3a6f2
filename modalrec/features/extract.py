"""Running an extractor over a catalogue: caching, batching, progress and missing content."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modalrec.features.table import FeatureTable
from modalrec.errors import DataFormatError
from modalrec.features.base import Content, ContentError, Extractor
from modalrec.features.cache import FeatureCache, content_hash
from modalrec.progress import progress as progress_reporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MissingContent:
    item_id: str
    reason: str


@dataclass
class ExtractionResult:
    """A feature table plus what happened: how many items were computed, cached or missing, and how fast."""

    table: FeatureTable
    extractor: str
    settings: dict[str, object]
    computed: int = 0
    cached: int = 0
    missing: list[MissingContent] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def extract_table(
    extractor: Extractor,
    item_ids: Sequence[str],
    contents: Sequence[Content | None],
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> ExtractionResult:
    """Vectors for every item; ``None`` or unusable content becomes the mean fill, flagged in ``missing``.

    Only items whose (extractor settings, content hash) pair is not in the cache are computed.
    """
    if len(item_ids) != len(contents):
        raise ValueError(f"{len(item_ids)} item ids but {len(contents)} contents")
    vectors: dict[int, np.ndarray] = {}
    missing: list[MissingContent] = []
    hashed: list[tuple[int, str]] = []  # (row, content hash) of items with readable content
    for row, content in enumerate(contents):
        if content is None or (isinstance(content, str) and not content.strip()):
            missing.append(MissingContent(item_ids[row], "no content"))
            continue
        try:
            hashed.append((row, content_hash(content)))
        except ContentError as exc:
            missing.append(MissingContent(item_ids[row], str(exc)))
    fingerprint = extractor.fingerprint()
    if extractor.corpus_dependent:
        extractor.fit([contents[row] for row, _ in hashed])  # type: ignore[misc]
        fingerprint += "-" + hashlib.sha256("".join(key for _, key in hashed).encode()).hexdigest()[:16]
    cache = FeatureCache(cache_dir, extractor.name, fingerprint) if cache_dir else None
    pending: list[tuple[int, str]] = []  # (row, content hash) still to compute
    for row, key in hashed:
        hit = cache.get(key) if cache else None
        if hit is not None and hit.shape == (extractor.dim,):
            vectors[row] = hit
        else:
            pending.append((row, key))
    cached = len(vectors)
    start = time.perf_counter()
    bar = progress_reporter(len(pending), f"{extractor.kind} features ({extractor.name})", "item", enabled=progress)
    with bar:
        for offset in range(0, len(pending), batch_size):
            chunk = pending[offset : offset + batch_size]
            loaded: list[tuple[int, str, object]] = []
            for row, key in chunk:
                try:
                    loaded.append((row, key, extractor.load(contents[row])))  # type: ignore[arg-type]
                except ContentError as exc:
                    missing.append(MissingContent(item_ids[row], str(exc)))
            if loaded:
                batch = extractor.embed([prepared for _, _, prepared in loaded])
                for (row, key, _), vector in zip(loaded, batch, strict=True):
                    vectors[row] = vector
                    if cache:
                        cache.put(key, vector)
            bar.update(len(chunk))
    seconds = time.perf_counter() - start
    table = _assemble(extractor, len(item_ids), vectors)
    for item in missing:
        log.warning("%s: item %s: %s (filled with the mean)", extractor.name, item.item_id, item.reason)
    return ExtractionResult(table, extractor.name, extractor.settings(), len(vectors) - cached, cached,
                            missing, seconds)


def _assemble(extractor: Extractor, num_items: int, vectors: dict[int, np.ndarray]) -> FeatureTable:
    if not vectors:
        raise DataFormatError(None, f"{extractor.name}: no item has usable {extractor.kind} content")
    present = np.zeros(num_items, dtype=bool)
    values = np.zeros((num_items, extractor.dim), dtype=np.float32)
    rows = np.fromiter(vectors, dtype=np.int64)
    values[rows] = np.stack([vectors[r] for r in rows]).astype(np.float32)
    present[rows] = True
    if not present.all():
        values[~present] = values[present].mean(axis=0)
    return FeatureTable(values, ~present, source=extractor.name)
