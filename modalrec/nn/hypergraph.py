r"""Hypergraphs with learnable hyperedges (LGMRec's global hypergraph embedding).

Nodes are softly assigned to A hyperedges by a row-stochastic matrix :math:`\mathbf H` (N, A). One
hypergraph layer gathers node embeddings into hyperedges, :math:`\mathbf H^\top \mathbf E`, and spreads them
back, :math:`\mathbf H\,\mathbf H^\top \mathbf E`: nodes that share hyperedges exchange information however
far apart they are in the interaction graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def hyperedge_assignment(logits: Tensor, temperature: float, *, sample: bool) -> Tensor:
    r"""Soft assignment of each node to the hyperedges; every row sums to 1.

    With ``sample`` it is the Gumbel-softmax :math:`\mathrm{softmax}((\mathbf z + \mathbf g)/\tau)` with
    :math:`g \sim \mathrm{Gumbel}(0, 1)` (training); otherwise the noise-free
    :math:`\mathrm{softmax}(\mathbf z/\tau)`, so that scores are deterministic (inference).

    Shapes: (N, A) -> (N, A).
    """
    if sample:
        return F.gumbel_softmax(logits, tau=temperature, hard=False, dim=1)
    return torch.softmax(logits / temperature, dim=1)


def hypergraph_propagate(item_assignment: Tensor, item_embeddings: Tensor, num_layers: int) -> tuple[Tensor, Tensor]:
    r"""Item embeddings passed through ``num_layers`` (>= 1) hypergraph layers.

    .. math::
        \mathbf Z^{(h)} = \mathbf H_i^\top \mathbf E_i^{(h)}, \qquad
        \mathbf E_i^{(h+1)} = \mathbf H_i \mathbf Z^{(h)}

    Any other node assigned to the same hyperedges (a user, a new item) reads the last hyperedge embeddings:
    :math:`\mathbf E_u = \mathbf H_u \mathbf Z^{(L-1)}`.

    Returns:
        (the last hyperedge embeddings :math:`\mathbf Z^{(L-1)}`, the item embeddings :math:`\mathbf E_i^{(L)}`).

    Shapes: item_assignment (I, A), item_embeddings (I, d) -> (A, d), (I, d).
    """
    hyperedges = item_assignment.T @ item_embeddings  # (A, d)
    items = item_assignment @ hyperedges
    for _ in range(num_layers - 1):
        hyperedges = item_assignment.T @ items
        items = item_assignment @ hyperedges
    return hyperedges, items
