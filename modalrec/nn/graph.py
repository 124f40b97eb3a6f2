"""The user-item bipartite graph and its symmetric normalisation, built once as a sparse CSR tensor."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor


def unique_pairs(users: Tensor, items: Tensor, num_items: int) -> tuple[Tensor, Tensor]:
    """The distinct (user, item) pairs, ordered by user then item: repeated interactions count once.

    Shapes: (E,), (E,) -> (P,), (P,) long.
    """
    keys = torch.unique(users.long() * num_items + items.long())
    return keys // num_items, keys % num_items


def normalized_adjacency(
    num_users: int, num_items: int, users: Tensor, items: Tensor, *, self_loops: bool = False
) -> Tensor:
    r"""The symmetric-normalised adjacency :math:`D^{-1/2} A D^{-1/2}` of the user-item graph.

    Nodes ``0..num_users-1`` are users and ``num_users..num_users+num_items-1`` items. With
    ``self_loops=True`` it is :math:`\tilde D^{-1/2} (A + I) \tilde D^{-1/2}` (GCN's form). Duplicate pairs
    count once; isolated nodes get zero rows.

    Shapes: users, items (E,) -> sparse CSR (N, N) with N = num_users + num_items.
    """
    num_nodes = num_users + num_items
    u, i = unique_pairs(users, items, num_items)
    i = i + num_users
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    if self_loops:
        loop = torch.arange(num_nodes, device=rows.device)
        rows, cols = torch.cat([rows, loop]), torch.cat([cols, loop])
    degree = torch.bincount(rows, minlength=num_nodes).float()
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[torch.isinf(inv_sqrt)] = 0.0
    values = inv_sqrt[rows] * inv_sqrt[cols]
    coo = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values, (num_nodes, num_nodes), check_invariants=False, device=values.device
    )
    return csr_from_coo(coo)


def csr_from_coo(matrix: Tensor) -> Tensor:
    """A sparse COO (or CSR) matrix as coalesced CSR, with int32 indices when they fit. MKL's sparse product
    takes int32 indices as they are and copies int64 ones on every call; the result is the same bit for bit.

    Shapes: (R, C) -> (R, C).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = matrix.to_sparse_coo().coalesce().to_sparse_csr()
        if max(csr.shape) >= 2**31 or csr._nnz() >= 2**31:
            return csr
        indices = csr.crow_indices().int(), csr.col_indices().int()
        return torch.sparse_csr_tensor(*indices, csr.values(), csr.shape, device=csr.device, check_invariants=False)


def csr_from_rows(cols: Tensor, values: Tensor, num_cols: int) -> Tensor:
    """The sparse CSR matrix whose row i holds ``values[i, j]`` at column ``cols[i, j]``; repeated columns
    of a row are summed, as a COO matrix's coalescing would, but row by row on (R, w) tensors instead of a
    sort of all R * w entries. Differentiable in ``values``. Indices are int32 when they fit (see
    :func:`csr_from_coo`).

    Shapes: cols (R, w), values (R, w) -> sparse CSR (R, num_cols).
    """
    num_rows, width = cols.shape
    cols, order = torch.sort(cols, dim=1, stable=True)
    values = torch.gather(values, 1, order)
    starts = torch.ones_like(cols, dtype=torch.bool)
    starts[:, 1:] = cols[:, 1:] != cols[:, :-1]  # the first entry of each run of equal columns
    slot = torch.cumsum(starts, dim=1) - 1  # the merged entry each original entry is added into
    merged = torch.zeros_like(values).scatter_add(1, slot, values)
    kept = torch.arange(width, device=cols.device) < starts.sum(1, keepdim=True)  # the first count slots
    merged_cols = torch.zeros_like(cols).scatter(1, slot, cols)
    counts = kept.sum(1)
    index = torch.int32 if max(num_rows, num_cols) < 2**31 and num_rows * width < 2**31 else torch.long
    crow = torch.zeros(num_rows + 1, dtype=index, device=cols.device)
    crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, merged_cols[kept].to(index), merged[kept], (num_rows, num_cols),
                                       device=cols.device, check_invariants=False)


def sparse_matmul(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` for a sparse CSR ``matrix`` and a dense ``x``, without autograd.

    On the CPU, ``torch.addmm(out, matrix, x, beta=0, out=out)`` with a fresh row-major ``out`` runs MKL's
    sparse product straight into the result; ``matrix @ x`` zero-fills a column-major buffer and copies it
    back, which is slower. Other layouts,
    devices and dtypes use ``matrix @ x``.

    Shapes: (R, C) sparse CSR, (C, d) -> (R, d).
    """
    if (
        matrix.layout != torch.sparse_csr
        or x.dim() != 2
        or matrix.device.type != "cpu"
        or x.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.float64)
        or matrix.dtype != x.dtype
    ):
        return matrix @ x
    out = torch.empty(matrix.shape[0], x.shape[1], dtype=x.dtype)
    return torch.addmm(out, matrix, x.contiguous(), beta=0, out=out)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a constant symmetric sparse ``A``: the gradient is ``A @ grad`` (no transpose needed)."""

    @staticmethod
    def forward(ctx: Any, adjacency: Tensor, x: Tensor) -> Tensor:
        ctx.adjacency = adjacency
        return sparse_matmul(adjacency, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, sparse_matmul(ctx.adjacency, grad)


def propagate(adjacency: Tensor, x: Tensor) -> Tensor:
    """One propagation step ``adjacency @ x`` with a symmetric, constant adjacency.

    Shapes: (N, N) sparse, (N, d) -> (N, d).
    """
    return _SymmetricSpMM.apply(adjacency, x)
