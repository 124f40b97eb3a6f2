"""Neighbourhood aggregation on the user-item graph with self-loops (the GCN propagation rule)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.nn.graph import normalized_adjacency, propagate

AGGREGATIONS = ("mean", "add")


class GraphAggregation(nn.Module):
    r"""Aggregates every node's neighbourhood, the node itself included, over :math:`\tilde A = A + I`.

    .. math::
        \text{add:}\quad \tilde D^{-1/2} \tilde A \tilde D^{-1/2} X, \qquad
        \text{mean:}\quad \tilde D^{-1} \tilde A X = \tilde D^{-1/2}
        \bigl(\tilde D^{-1/2} \tilde A \tilde D^{-1/2}\bigr) \tilde D^{1/2} X

    The normalised graph is built once as a sparse CSR matrix and applied with a sparse matmul
    (:func:`modalrec.nn.graph.propagate`) rather than an ``edge_index`` message-passing layer. ``mean`` reuses the symmetric matrix through
    the identity above, so both modes share one matrix and its cheap symmetric backward pass.

    Args:
        num_users: U; nodes ``0..U-1`` are users.
        num_items: I; nodes ``U..U+I-1`` are items.
        users: the training pairs' users.
        items: the training pairs' items.
        aggregation: ``"mean"`` (the average over the neighbourhood) or ``"add"`` (GCN's symmetric sum).

    Shapes: users, items (E,); input and output (U+I, d).
    """

    adjacency: Tensor
    sqrt_degree: Tensor

    def __init__(self, num_users: int, num_items: int, users: Tensor, items: Tensor, aggregation: str) -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ConfigError("model.aggregation", f"expected one of {', '.join(AGGREGATIONS)}, found '{aggregation}'")
        self.aggregation = aggregation
        adjacency = normalized_adjacency(num_users, num_items, users, items, self_loops=True)
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("sqrt_degree", self_loop_degree(adjacency).sqrt(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.aggregation == "add":
            return propagate(self.adjacency, x)
        return propagate(self.adjacency, x * self.sqrt_degree) / self.sqrt_degree


def self_loop_degree(adjacency: Tensor) -> Tensor:
    r"""The degrees :math:`\tilde d` of :math:`A + I`, read off the diagonal :math:`1/\tilde d` of
    :math:`\tilde D^{-1/2} (A + I) \tilde D^{-1/2}`.

    Shapes: sparse (N, N) with a non-zero diagonal -> (N, 1).
    """
    coo = adjacency.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    on_diagonal = rows == cols
    degree = torch.zeros(adjacency.shape[0], 1, dtype=coo.values().dtype)
    degree[rows[on_diagonal], 0] = 1.0 / coo.values()[on_diagonal]
    return degree
