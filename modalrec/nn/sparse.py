"""Constant sparse matrices applied with autograd: user-item aggregation, item-item graphs, layer means.

:func:`modalrec.nn.graph.propagate` covers the symmetric user-item adjacency. The matrices here need not be
symmetric (a user-item block, a kNN item graph), so :class:`SparseOperator` stores the transpose once and
the backward pass is one more sparse product instead of autograd through a CSR product.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.nn.graph import csr_from_coo, propagate, sparse_matmul, unique_pairs

USER_ITEM_NORMALIZATIONS = ("none", "mean", "sym")


class _ConstantSpMM(torch.autograd.Function):
    """``M @ x`` for a constant sparse ``M``: the gradient is ``M.T @ grad``, with ``M.T`` given."""

    @staticmethod
    def forward(ctx: Any, matrix: Tensor, transpose: Tensor, x: Tensor) -> Tensor:
        ctx.transpose = transpose
        return sparse_matmul(matrix, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, sparse_matmul(ctx.transpose, grad)


class SparseOperator(nn.Module):
    """Applies a constant sparse matrix ``M`` (not trained, not saved: rebuilt from the data on load).

    Args:
        matrix: sparse (R, C) tensor, COO or CSR.

    Shapes: input (C, d) -> output (R, d).
    """

    matrix: Tensor
    transpose: Tensor

    def __init__(self, matrix: Tensor) -> None:
        super().__init__()
        coo = matrix.to_sparse_coo().coalesce()
        self.register_buffer("matrix", csr_from_coo(coo), persistent=False)
        self.register_buffer("transpose", csr_from_coo(coo.t()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return _ConstantSpMM.apply(self.matrix, self.transpose, x)


def user_item_matrix(num_users: int, num_items: int, users: Tensor, items: Tensor, normalization: str) -> Tensor:
    r"""The interaction matrix :math:`R` (duplicate pairs count once), optionally normalised.

    ``"none"`` gives :math:`R`; ``"mean"`` gives :math:`D_u^{-1} R` (a user's row averages its items);
    ``"sym"`` gives :math:`D_u^{-1/2} R D_i^{-1/2}`, the user-item block of
    :func:`modalrec.nn.graph.normalized_adjacency`. Users without items get zero rows.

    Shapes: users, items (E,) -> sparse COO (U, I).
    """
    if normalization not in USER_ITEM_NORMALIZATIONS:
        raise ConfigError(
            "normalization", f"expected one of {', '.join(USER_ITEM_NORMALIZATIONS)}, got '{normalization}'"
        )
    rows, cols = unique_pairs(users, items, num_items)
    values = torch.ones(len(rows), device=rows.device)
    user_degree = torch.bincount(rows, minlength=num_users).float()
    item_degree = torch.bincount(cols, minlength=num_items).float()
    if normalization == "mean":
        values = values / user_degree[rows]
    elif normalization == "sym":
        values = values * user_degree[rows].rsqrt() * item_degree[cols].rsqrt()
    size = (num_users, num_items)
    indices = torch.stack([rows, cols])
    matrix = torch.sparse_coo_tensor(indices, values, size, check_invariants=False, device=values.device)
    return matrix.coalesce()


def elementwise_max(graphs: list[Tensor]) -> Tensor:
    """The entry-wise maximum of sparse matrices of one shape over the union of their stored entries.

    An entry stored in only some of the matrices takes the maximum over those (absent is not zero), as in
    SMORE's max-pooled fusion graph.

    Shapes: each (N, N) sparse -> sparse CSR (N, N).
    """
    coos = [graph.to_sparse_coo().coalesce() for graph in graphs]
    size = coos[0].shape
    indices = torch.cat([coo.indices() for coo in coos], dim=1)  # (2, total)
    values = torch.cat([coo.values() for coo in coos])
    keys, position = torch.unique(indices[0] * size[1] + indices[1], return_inverse=True)
    pooled = torch.full((len(keys),), -torch.inf, dtype=values.dtype, device=values.device)
    pooled = pooled.scatter_reduce(0, position, values, reduce="amax")
    indices = torch.stack([keys // size[1], keys % size[1]])
    return csr_from_coo(torch.sparse_coo_tensor(indices, pooled, size, check_invariants=False, device=pooled.device))


def mean_of_layers(adjacency: Tensor, x: Tensor, num_layers: int) -> Tensor:
    r"""LightGCN's read-out: :math:`\frac{1}{L+1}\sum_{l=0}^{L} \hat A^l x` for a symmetric normalised
    adjacency :math:`\hat A` (:func:`modalrec.nn.graph.normalized_adjacency`).

    Shapes: (N, N) sparse, (N, d) -> (N, d).
    """
    layer, total = x, x
    for _ in range(num_layers):
        layer = propagate(adjacency, layer)
        total = total + layer
    return total / (num_layers + 1)
