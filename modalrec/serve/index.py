"""Nearest-neighbour search over item vectors with faiss: exact for small catalogues, HNSW above a threshold.

Two similarities are served: the inner product (a user vector against item vectors, the models' own score)
and the cosine (an item against items, for similar items; vectors are L2-normalised first). Below
:attr:`IndexConfig.exact_below` items the search is exact (``IndexFlatIP``); above it, an HNSW graph
(Malkov & Yashunin, TPAMI 2018, https://arxiv.org/abs/1603.09320) built on the inner product answers in
well under a millisecond. :func:`recall_at_k` measures how often the approximate index finds the exact
top k.

Items added while serving (new items from content) go to a small exact side table searched with every
query and merged, so the built index is never mutated and searches need no lock. A restart builds one
index over everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from modalrec.errors import ConfigError
from modalrec.io_utils import atomic_path

log = logging.getLogger(__name__)

EXACT_SHARE = 8
"""An HNSW index answers exactly when asked for more than 1/EXACT_SHARE of its items."""


@dataclass(frozen=True)
class IndexConfig:
    """How item vectors are indexed."""

    exact_below: int = 20_000  # catalogues with fewer items are searched exactly (IndexFlatIP)
    hnsw_neighbors: int = 32  # M, graph links per node; more is slower to build, better recall
    hnsw_ef_construction: int = 200  # candidate list while building the graph
    hnsw_ef_search: int = 200  # candidate list while searching (raised to the number of results asked for)
    threads: int = 1  # faiss OpenMP threads; one query at a time gains nothing from more

    def __post_init__(self) -> None:
        for key in ("hnsw_neighbors", "hnsw_ef_construction", "hnsw_ef_search", "threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"index.{key}", f"must be at least 1, got {getattr(self, key)}")
        if self.exact_below < 0:
            raise ConfigError("index.exact_below", f"must be >= 0, got {self.exact_below}")


@dataclass(frozen=True)
class Neighbours:
    """Search results, best first. ``ids`` index the indexed vectors (base items, then added ones)."""

    ids: np.ndarray  # (n,) int64
    scores: np.ndarray  # (n,) float32


class VectorIndex:
    """Top-k search of one query vector against item vectors by inner product (or cosine when ``cosine``).

    Args:
        vectors: the item vectors, row i for item i.
        config: :class:`IndexConfig`.
        cosine: normalise items and queries to unit length, so the score is the cosine similarity.
        cache_dir: where a built HNSW graph is saved and found again (keyed by the vectors and settings);
            None builds it every time.

    Shapes: vectors (I, d); queries (d,).
    """

    def __init__(self, vectors: np.ndarray, config: IndexConfig = IndexConfig(), *, cosine: bool = False,
                 cache_dir: Path | None = None) -> None:
        faiss.omp_set_num_threads(config.threads)
        self.config = config
        self.cosine = cosine
        base = self._prepare(vectors)
        self.dim = int(base.shape[1])
        self.num_base = int(base.shape[0])
        self.kind = "exact" if self.num_base < config.exact_below else "hnsw"
        self._base = base
        self._index = self._flat(base) if self.kind == "exact" else self._hnsw(base, cache_dir)
        self._added = np.zeros((0, self.dim), dtype=np.float32)

    def __len__(self) -> int:
        return self.num_base + len(self._added)

    def add(self, vectors: np.ndarray) -> None:
        """Make more items searchable at once; they take the next ids. Shapes: (n, d)."""
        self._added = np.concatenate([self._added, self._prepare(vectors)])  # a new array: searches never lock

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> Neighbours:
        """The k items with the highest scores, leaving out the ids in ``exclude``.

        Fewer than k come back only when the catalogue (less ``exclude``) is smaller, or, rarely, when the
        approximate graph does not reach enough items.
        """
        excluded = np.zeros(0, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
        wanted = min(k + len(excluded), len(self))
        if wanted <= 0:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        row = self._prepare(query.reshape(1, -1))
        ids, scores = self._search_base(row, min(wanted, self.num_base))
        added = self._added
        if len(added):
            extra_scores = (added @ row[0]).astype(np.float32)
            ids = np.concatenate([ids, np.arange(self.num_base, self.num_base + len(added))])
            scores = np.concatenate([scores, extra_scores])
            order = np.argsort(-scores, kind="stable")
            ids, scores = ids[order], scores[order]
        if len(excluded):
            banned = set(excluded.tolist())  # a set beats np.isin on these few dozen ids
            keep = np.fromiter((i not in banned for i in ids.tolist()), dtype=bool, count=len(ids))
            ids, scores = ids[keep], scores[keep]
        return Neighbours(ids[:k], scores[:k])

    def _search_base(self, row: np.ndarray, wanted: int) -> tuple[np.ndarray, np.ndarray]:
        if wanted <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.kind == "hnsw" and wanted * EXACT_SHARE <= self.num_base:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from the stubs
            params.efSearch = max(self.config.hnsw_ef_search, wanted)
            scores, ids = self._index.search(row, wanted, params=params)
        elif self.kind == "hnsw":  # a large share of the catalogue: a graph walk would not reach it all
            scores_all = self._base @ row[0]
            top = np.argpartition(-scores_all, wanted - 1)[:wanted]
            top = top[np.argsort(-scores_all[top], kind="stable")]
            return top.astype(np.int64), scores_all[top].astype(np.float32)
        else:
            scores, ids = self._index.search(row, wanted)
        found = ids[0] >= 0  # HNSW marks slots it could not fill with -1
        return ids[0][found].astype(np.int64), scores[0][found]

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"expected a (n, d) matrix of vectors, got shape {matrix.shape}")
        if self.cosine:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.maximum(norms, 1e-12)
        return matrix

    def _flat(self, base: np.ndarray) -> faiss.Index:
        index = faiss.IndexFlatIP(self.dim)
        index.add(base)
        return index

    def _hnsw(self, base: np.ndarray, cache_dir: Path | None) -> faiss.Index:
        cache = self._cache_file(base, cache_dir)
        if cache is not None and cache.is_file():
            try:
                index = faiss.read_index(str(cache))
                if index.ntotal == self.num_base and index.d == self.dim:
                    log.info("loaded the HNSW index of %d items from %s", self.num_base, cache)
                    return index
            except RuntimeError as exc:  # a damaged cache file is rebuilt
                log.warning("ignoring unreadable index cache %s: %s", cache, exc)
        log.info("building an HNSW index of %d items (M=%d, efConstruction=%d)", self.num_base,
                 self.config.hnsw_neighbors, self.config.hnsw_ef_construction)
        index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_neighbors, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.hnsw_ef_construction
        index.add(base)
        if cache is not None:
            _save_index(index, cache)
        return index

    def _cache_file(self, base: np.ndarray, cache_dir: Path | None) -> Path | None:
        if cache_dir is None:
            return None
        digest = hashlib.sha256(base.tobytes())
        graph = [self.config.hnsw_neighbors, self.config.hnsw_ef_construction, self.cosine, faiss.__version__]
        digest.update(json.dumps(graph).encode())
        kind = "cosine" if self.cosine else "dot"
        return cache_dir / f"hnsw-{kind}-{digest.hexdigest()[:20]}.faiss"


def _save_index(index: faiss.Index, path: Path) -> None:
    try:
        for stale in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.faiss"):
            stale.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
    except OSError as exc:  # a read-only run folder only costs a rebuild next time
        log.warning("could not save the index cache %s: %s", path, exc)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, *, cosine: bool = False) -> np.ndarray:
    """The exact top-k ids per query by inner product (or cosine). Shapes: (I, d), (Q, d) -> (Q, k)."""
    exact = VectorIndex(vectors, IndexConfig(exact_below=len(vectors) + 1), cosine=cosine)
    return np.stack([exact.search(query, k).ids for query in queries])


def recall_at_k(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k (over ``vectors``) that ``index`` returns, over ``queries``.

    Shapes: vectors (I, d) the indexed vectors; queries (Q, d).
    """
    truth = exact_top_k(vectors, queries, k, cosine=index.cosine)
    found = [np.intersect1d(index.search(query, k).ids, expected).size / len(expected)
             for query, expected in zip(queries, truth, strict=True)]
    return float(np.mean(found))
