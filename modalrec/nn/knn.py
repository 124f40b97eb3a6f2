"""Sparse item-item k-nearest-neighbour graphs from content features, built in chunks.

The similarity matrix is never materialised: rows are processed ``chunk_size`` at a time and only the top-k
neighbours of each row are kept, so memory is O(chunk_size x num_items + num_items x k). This is what lets
FREEDOM- and LATTICE-style models run at 60,000+ items.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor

from modalrec.errors import ConfigError
from modalrec.nn.graph import csr_from_coo, csr_from_rows

NORMALIZATIONS = ("sym", "row", "none")

_CONSTANT_TABLES_ALLOWED: ContextVar[bool] = ContextVar("constant_tables_allowed", default=False)


@contextmanager
def constant_tables_allowed() -> Iterator[None]:
    """Within this block a table whose rows are all equal gets the self-loop graph (each item its own only
    neighbour, a graph that says nothing about similarity) instead of a :class:`ConfigError`.

    ``explain`` needs this: it measures a modality's contribution by replacing the modality with its mean
    over items, and a model rebuilt on that table must still be able to build (or rebuild) its graphs.
    """
    token = _CONSTANT_TABLES_ALLOWED.set(True)
    try:
        yield
    finally:
        _CONSTANT_TABLES_ALLOWED.reset(token)


def knn_graph(
    features: Tensor,
    k: int,
    *,
    weighted: bool = False,
    normalization: str = "sym",
    include_self: bool = True,
    chunk_size: int = 1024,
    name: str = "features",
) -> Tensor:
    r"""The item-item kNN graph under cosine similarity, as a sparse CSR tensor.

    Each item keeps its ``k`` most similar items (itself included when ``include_self``). Edge values are
    1 (``weighted=False``, FREEDOM) or the cosine similarity (``weighted=True``, LATTICE); then
    ``normalization="sym"`` gives :math:`D^{-1/2} S D^{-1/2}`, ``"row"`` gives :math:`D^{-1} S`, with
    :math:`D` the row sums of :math:`S`.

    Args:
        features: (I, F) item features.
        k: neighbours per item, at most I.
        name: the modality's name, for error messages.

    Shapes: (I, F) -> sparse CSR (I, I) with I * k stored values.
    """
    cols, values = knn_neighbours(
        features, k, weighted=weighted, normalization=normalization, include_self=include_self,
        chunk_size=chunk_size, name=name,
    )
    return csr_from_rows(cols, values, features.shape[0])


def knn_neighbours(
    features: Tensor,
    k: int,
    *,
    weighted: bool = False,
    normalization: str = "sym",
    include_self: bool = True,
    chunk_size: int = 1024,
    name: str = "features",
) -> tuple[Tensor, Tensor]:
    """:func:`knn_graph` as row lists: row i's ``k`` neighbour columns and its normalised edge values.

    Models that add several graphs together (LATTICE) merge these lists row by row with
    :func:`csr_from_rows`, which is much cheaper than summing sparse matrices. The values are
    differentiable in ``features`` when LATTICE learns through them.

    Shapes: (I, F) -> cols (I, k) long, values (I, k).
    """
    num_items = features.shape[0]
    if not 1 <= k <= num_items:
        raise ConfigError("model.knn_k", f"asked for {k} neighbours, but there are {num_items} items (1..{num_items})")
    if normalization not in NORMALIZATIONS:
        raise ConfigError("normalization", f"expected one of {', '.join(NORMALIZATIONS)}, got '{normalization}'")
    if _is_constant(features):
        if _CONSTANT_TABLES_ALLOWED.get():
            return _self_loops(num_items, k, features.device, normalization)
        raise ConfigError("model", f"modality '{name}' has zero variance across items; its kNN graph is meaningless")
    unit = F.normalize(features.float(), dim=1)
    device = unit.device  # every tensor made here lives beside the features (LATTICE rebuilds on CUDA)
    cols = torch.empty(num_items, k, dtype=torch.long, device=device)
    values = torch.empty(num_items, k, device=device)
    block = torch.empty(min(chunk_size, num_items), num_items, device=device)  # one buffer for every chunk
    with torch.no_grad():
        for start in range(0, num_items, chunk_size):
            stop = min(start + chunk_size, num_items)
            similarity = torch.mm(unit[start:stop], unit.T, out=block[: stop - start])  # (C, I)
            if not include_self:
                local = torch.arange(stop - start, device=device)
                similarity[local, local + start] = -torch.inf
            torch.topk(similarity, k, dim=1, out=(values[start:stop], cols[start:stop]))
    if not weighted:
        values = torch.ones_like(values)
    elif unit.requires_grad and torch.is_grad_enabled():  # LATTICE learns through the edge values
        values = (unit.unsqueeze(1) * unit[cols]).sum(2)
    return cols, _normalized(cols, values, normalization)


def _self_loops(num_items: int, k: int, device: torch.device, normalization: str) -> tuple[Tensor, Tensor]:
    """Each item linked to itself with weight 1 and to its k-1 successors with weight 0: the self-loop graph
    with the I * k stored values of a kNN graph, so code that stacks graphs of one size still can."""
    offsets = torch.arange(k, device=device).expand(num_items, k)
    cols = (torch.arange(num_items, device=device).unsqueeze(1) + offsets) % num_items
    return cols, _normalized(cols, (offsets == 0).float(), normalization)


def _is_constant(features: Tensor) -> bool:
    """Whether every row equals the first (every column has zero variance)."""
    table = features.detach()
    return bool((table == table[:1]).all())


def _normalized(cols: Tensor, values: Tensor, normalization: str) -> Tensor:
    """Edge values of row lists under ``normalization``, the degrees being the row sums. Shapes: (I, k)."""
    if normalization == "none":
        return values
    degree = values.sum(1)
    if normalization == "sym":
        inv_sqrt = degree.pow(-0.5)
        inv_sqrt[torch.isinf(inv_sqrt)] = 0.0
        return inv_sqrt.unsqueeze(1) * values * inv_sqrt[cols]
    inverse = degree.reciprocal()
    inverse[torch.isinf(inverse)] = 0.0
    return inverse.unsqueeze(1) * values


def weighted_sum(graphs: list[Tensor], weights: list[float]) -> Tensor:
    """``sum_m weights[m] * graphs[m]`` for sparse graphs of the same size, as sparse CSR."""
    parts = [w * g.to_sparse_coo() for g, w in zip(graphs, weights, strict=True)]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return csr_from_coo(total)
