"""The chunked sparse kNN graph against a dense computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modalrec.errors import ConfigError
from modalrec.nn.graph import csr_from_rows
from modalrec.nn.knn import knn_graph, knn_neighbours, weighted_sum


def dense_knn(features: torch.Tensor, k: int, weighted: bool) -> torch.Tensor:
    unit = F.normalize(features, dim=1)
    similarity = unit @ unit.T
    top = torch.topk(similarity, k, dim=1)
    graph = torch.zeros_like(similarity)
    graph.scatter_(1, top.indices, top.values if weighted else torch.ones_like(top.values))
    inv_sqrt = graph.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * graph * inv_sqrt[None, :]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_graph_matches_dense(weighted: bool, chunk: int) -> None:
    features = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    graph = knn_graph(features, 5, weighted=weighted, chunk_size=chunk)
    assert graph.layout == torch.sparse_csr and graph._nnz() == 30 * 5
    assert torch.allclose(graph.to_dense(), dense_knn(features, 5, weighted), atol=1e-6)


def test_nearest_neighbour_is_the_twin() -> None:
    features = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.98]])
    graph = knn_graph(features, 1, include_self=False, normalization="none").to_dense()
    assert graph.argmax(1).tolist() == [1, 0, 3, 2]


def test_row_normalisation_sums_to_one() -> None:
    graph = knn_graph(torch.randn(20, 4), 3, weighted=True, normalization="row")
    assert torch.allclose(graph.to_dense().sum(1), torch.ones(20), atol=1e-5)


def test_bad_requests() -> None:
    with pytest.raises(ConfigError, match="asked for 11 neighbours, but there are 10 items"):
        knn_graph(torch.randn(10, 3), 11)
    with pytest.raises(ConfigError, match="modality 'image' has zero variance"):
        knn_graph(torch.ones(10, 3), 2, name="image")


def test_weighted_sum() -> None:
    a = knn_graph(torch.randn(12, 3), 2)
    b = knn_graph(torch.randn(12, 3), 2)
    assert torch.allclose(weighted_sum([a, b], [0.3, 0.7]).to_dense(), 0.3 * a.to_dense() + 0.7 * b.to_dense())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("normalization", ["sym", "row", "none"])
def test_graph_is_built_beside_the_features(weighted: bool, normalization: str) -> None:
    """Every tensor is made on the features' device: with "meta" as the default device, a tensor made without
    ``device=`` would land on "meta" and the build would fail or return a meta graph (LATTICE's per-epoch
    rebuild on CUDA failed this way). Features of another dtype (float64) give the same graph."""
    features = torch.randn(25, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    options = {"weighted": weighted, "normalization": normalization, "include_self": False, "chunk_size": 10}
    expected = knn_graph(features, 4, **options)
    with torch.device("meta"):
        graph = knn_graph(features, 4, **options)
    assert graph.device == features.device and graph.dtype == torch.float32
    assert torch.equal(graph.to_dense(), expected.to_dense())
    assert torch.diagonal(graph.to_dense()).eq(0).all()  # include_self=False reached the right cells


def test_rows_with_repeated_columns_are_summed_into_a_canonical_csr() -> None:
    generator = torch.Generator().manual_seed(3)
    cols = torch.randint(0, 6, (9, 7), generator=generator)  # many repeats within each row
    values = torch.randn(9, 7, generator=generator, requires_grad=True)
    graph = csr_from_rows(cols, values, 6)
    expected = torch.zeros(9, 6).index_put_((torch.arange(9).repeat_interleave(7), cols.flatten()),
                                            values.detach().flatten(), accumulate=True)
    assert torch.allclose(graph.to_dense(), expected, atol=1e-6)
    crow, col = graph.crow_indices().long(), graph.col_indices().long()
    assert graph.crow_indices().dtype == torch.int32 and graph._nnz() == sum(len(set(r)) for r in cols.tolist())
    for row in range(9):  # each row's columns ascending and distinct
        assert torch.all(col[crow[row] + 1 : crow[row + 1]] > col[crow[row] : crow[row + 1] - 1])
    x = torch.randn(6, 2, generator=generator)
    torch.sparse.mm(graph, x).sum().backward()
    assert values.grad is not None and torch.allclose(values.grad, x.sum(1)[cols], atol=1e-6)


def test_row_lists_match_the_graph() -> None:
    features = torch.randn(25, 6, generator=torch.Generator().manual_seed(1))
    cols, values = knn_neighbours(features, 4, weighted=True)
    rows = torch.arange(25).repeat_interleave(4)
    dense = torch.zeros(25, 25).index_put_((rows, cols.flatten()), values.flatten())
    assert cols.shape == values.shape == (25, 4)
    assert torch.allclose(dense, dense_knn(features, 4, weighted=True), atol=1e-6)
