"""Graph builders make every tensor beside their inputs: with "meta" as the default device, a tensor made
without ``device=`` would land there and the build would fail, as it would on CUDA."""

from __future__ import annotations

import torch

from modalrec.nn.graph import normalized_adjacency, sparse_matmul
from modalrec.nn.sparse import elementwise_max, user_item_matrix

USERS = torch.tensor([0, 0, 1, 2, 2, 2])
ITEMS = torch.tensor([0, 1, 1, 0, 2, 1])


def test_adjacency_with_self_loops_is_built_beside_the_interactions() -> None:
    expected = normalized_adjacency(3, 3, USERS, ITEMS, self_loops=True).to_dense()
    with torch.device("meta"):
        adjacency = normalized_adjacency(3, 3, USERS, ITEMS, self_loops=True)
    assert adjacency.device == USERS.device
    assert torch.equal(adjacency.to_dense(), expected)
    assert torch.allclose(adjacency.to_dense()[0, 0], torch.tensor(1 / 3))  # user 0: two items and itself


def test_user_item_matrix_and_max_pooling_are_built_beside_the_interactions() -> None:
    expected = user_item_matrix(3, 3, USERS, ITEMS, "mean").to_dense()
    with torch.device("meta"):
        matrix = user_item_matrix(3, 3, USERS, ITEMS, "mean")
        pooled = elementwise_max([matrix, 2 * matrix])
    assert matrix.device == USERS.device and pooled.device == USERS.device
    assert torch.equal(matrix.to_dense(), expected)
    assert torch.equal(pooled.to_dense(), 2 * expected)
    assert torch.allclose(expected.sum(1), torch.ones(3))  # each user's row averages its items


def test_graphs_keep_int32_indices_and_multiply_as_dense() -> None:
    """MKL's sparse product copies int64 indices on every call, so the builders store int32 ones."""
    adjacency = normalized_adjacency(3, 3, USERS, ITEMS)
    pooled = elementwise_max([user_item_matrix(3, 3, USERS, ITEMS, "sym")])
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    for matrix in (adjacency, pooled):
        assert matrix.crow_indices().dtype == torch.int32 and matrix.col_indices().dtype == torch.int32
    assert torch.allclose(sparse_matmul(adjacency, x), adjacency.to_dense() @ x)
    assert torch.allclose(sparse_matmul(pooled, x[:3]), pooled.to_dense() @ x[:3])
