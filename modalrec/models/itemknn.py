"""ItemKNN: item-based collaborative filtering with cosine similarity on the interaction matrix, keeping each
item's top-k neighbours. Sarwar et al., "Item-Based Collaborative Filtering Recommendation Algorithms",
WWW 2001; the standard baseline of Cornac (``ItemKNN``) and RecBole (``ItemKNN``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from modalrec.config import check_at_least
from modalrec.errors import ConfigError
from modalrec.models.base import ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import register_model
from modalrec.nn.graph import csr_from_coo


@dataclass(frozen=True)
class ItemKNNConfig:
    k: int = 100  # neighbours kept per item (at most the number of other items)
    shrink: float = 0.0  # added to the cosine's denominator: damps similarities backed by few co-interactions
    chunk_size: int = 1024  # items whose similarities are computed at once (memory: chunk_size x users)

    def __post_init__(self) -> None:
        check_at_least("model", 1, k=self.k, chunk_size=self.chunk_size)
        check_at_least("model", 0, shrink=self.shrink)


@register_model(
    "itemknn",
    config=ItemKNNConfig,
    description="ItemKNN: cosine item-item similarity on interactions, top-k neighbours; the classic CF baseline",
    capabilities=Capabilities(closed_form=True),
)
class ItemKNN(Recommender):
    r"""Scores an item by the similarity of the user's history to it.

    With :math:`\mathbf r_i \in \{0,1\}^U` item :math:`i`'s column of the training matrix,

    .. math::
        s_{ji} = \frac{\mathbf r_j^\top \mathbf r_i}{\lVert\mathbf r_j\rVert\,\lVert\mathbf r_i\rVert + \beta},
        \qquad
        \hat y_{ui} = \sum_{j \in N_u} s_{ji}\,[\,j \in \mathrm{top}_k(i)\,],

    where :math:`\mathrm{top}_k(i)` are the :math:`k` items most similar to :math:`i` (itself excluded) and
    :math:`\beta` is ``shrink``. Similarities are computed ``chunk_size`` items at a time and only the top-k
    are kept, so memory is O(chunk_size x U + I x k). Nothing is learned; the Trainer evaluates it once. An
    item without training interactions has no neighbours and scores 0.

    Shapes: neighbours (I, I) sparse CSR with I * k values, row i holding the weights of i's neighbours;
    history (U, I) sparse CSR.
    """

    neighbours: Tensor
    history: Tensor

    def __init__(self, config: ItemKNNConfig, inputs: ModelInputs) -> None:
        super().__init__(config, inputs)
        users, items = inputs.train_users.numpy().astype(np.int64), inputs.train_items.numpy().astype(np.int64)
        history = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                                shape=(inputs.num_users, inputs.num_items))
        history.data[:] = 1.0  # repeated pairs count once
        self.register_buffer("neighbours", self.top_k_similarities(history), persistent=False)
        coo = history.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        pairs = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), history.shape, check_invariants=False)
        self.register_buffer("history", csr_from_coo(pairs), persistent=False)

    def top_k_similarities(self, history: sp.csr_matrix) -> Tensor:
        """Row i: the cosine similarities of item i's top-k neighbours (shrunk), 0 elsewhere."""
        num_items = history.shape[1]
        k = min(self.config.k, max(num_items - 1, 1))
        columns = history.T.tocsr()  # (I, U)
        norms = torch.from_numpy(np.sqrt(np.asarray(columns.sum(axis=1), dtype=np.float32).ravel()))  # (I,)
        rows, cols, values = [], [], []
        for start in range(0, num_items, self.config.chunk_size):
            stop = min(start + self.config.chunk_size, num_items)
            overlap = torch.from_numpy((columns[start:stop] @ history).toarray())  # (C, I): co-interaction counts
            similarity = overlap / (norms[start:stop, None] * norms[None, :] + self.config.shrink).clamp(min=1e-12)
            local = torch.arange(stop - start)
            similarity[local, local + start] = -torch.inf  # an item is not its own neighbour
            best, index = torch.topk(similarity, k, dim=1)
            rows.append((local + start).repeat_interleave(k))
            cols.append(index.reshape(-1))
            values.append(best.reshape(-1).clamp(min=0.0))  # -inf only when there is a single item
        coo = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(values),
                                      (num_items, num_items), check_invariants=False)
        return csr_from_coo(coo)

    def loss(self, batch: TrainBatch) -> Tensor:
        raise ConfigError("model", "itemknn is computed in closed form and has no training loss")

    def score(self, users: Tensor, items: Tensor | None = None) -> Tensor:
        rows = torch.index_select(self.history.to_sparse_coo(), 0, users).to_dense()  # (B, I)
        scores = torch.sparse.mm(self.neighbours, rows.T).T  # (B, I): sum over history of s_ji
        return scores if items is None else scores[:, items]


__all__ = ["ItemKNN", "ItemKNNConfig"]
