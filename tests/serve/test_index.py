"""The faiss index: exact below the threshold, HNSW above it with recall@20 >= 0.95, exclusions, additions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modalrec.serve.index import IndexConfig, VectorIndex, exact_top_k, recall_at_k


def clustered(num_items: int, dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors around ``clusters`` centres with varied norms, and user-like queries near the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    items = centres[rng.integers(0, clusters, num_items)] + 0.5 * rng.normal(size=(num_items, dim))
    items *= rng.uniform(0.5, 1.5, size=(num_items, 1))
    queries = centres[rng.integers(0, clusters, 200)] + 0.5 * rng.normal(size=(200, dim))
    return items.astype(np.float32), queries.astype(np.float32)


def test_small_catalogues_are_searched_exactly() -> None:
    items, queries = clustered(300, 16, 5)
    index = VectorIndex(items)
    assert index.kind == "exact"
    for query in queries[:20]:
        found = index.search(query, 10)
        scores = items @ query
        assert found.ids.tolist() == np.argsort(-scores, kind="stable")[:10].tolist()
        np.testing.assert_allclose(found.scores, np.sort(scores)[::-1][:10], rtol=1e-5)


def test_hnsw_finds_at_least_95_percent_of_the_exact_top_20() -> None:
    items, queries = clustered(12_000, 64, 40)
    index = VectorIndex(items, IndexConfig(exact_below=10_000))  # every other setting at its default
    assert index.kind == "hnsw"
    assert recall_at_k(index, items, queries, 20) >= 0.95
    cosine = VectorIndex(items, IndexConfig(exact_below=10_000), cosine=True)
    assert cosine.kind == "hnsw" and recall_at_k(cosine, items, queries, 20) >= 0.95


@pytest.mark.parametrize("exact_below", [10_000, 100])
def test_excluded_items_never_come_back_and_k_are_still_returned(exact_below: int) -> None:
    items, queries = clustered(2_000, 16, 10)
    index = VectorIndex(items, IndexConfig(exact_below=exact_below))
    for query in queries[:20]:
        best = exact_top_k(items, query[None], 50)[0]
        excluded = best[::2]  # half of the true top 50
        found = index.search(query, 20, excluded)
        assert len(found.ids) == 20 and not np.isin(found.ids, excluded).any()
    assert len(index.search(queries[0], 5000).ids) == 2000  # k above the catalogue: everything once


def test_added_items_are_searchable_at_once() -> None:
    items, queries = clustered(500, 8, 4)
    index = VectorIndex(items, IndexConfig(exact_below=100))
    query = queries[0]
    champion = (query * 10).reshape(1, -1)  # scores above every indexed item
    index.add(champion)
    assert len(index) == 501
    found = index.search(query, 3)
    assert found.ids[0] == 500 and found.scores[0] == pytest.approx(float(champion[0] @ query), rel=1e-5)
    assert 500 not in index.search(query, 3, exclude=np.asarray([500])).ids
    cosine = VectorIndex(items, cosine=True)
    cosine.add(items[:1] * 3)  # same direction as item 0: cosine 1
    assert set(cosine.search(items[0], 2).ids.tolist()) == {0, 500}


def test_a_built_graph_is_cached_and_reused(tmp_path: Path) -> None:
    items, queries = clustered(1_500, 16, 8)
    config = IndexConfig(exact_below=1_000)
    first = VectorIndex(items, config, cache_dir=tmp_path)
    cached = list(tmp_path.glob("hnsw-dot-*.faiss"))
    assert len(cached) == 1
    second = VectorIndex(items, config, cache_dir=tmp_path)
    assert second.search(queries[0], 10).ids.tolist() == first.search(queries[0], 10).ids.tolist()
    VectorIndex(items[:1_200], config, cache_dir=tmp_path)  # other vectors: a new file replaces the old one
    assert len(list(tmp_path.glob("hnsw-dot-*.faiss"))) == 1 and not cached[0].exists()
