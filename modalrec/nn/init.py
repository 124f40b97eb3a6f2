"""Starting points for ID embeddings that are better than random ones."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds
from torch import Tensor

from modalrec.config import check_range
from modalrec.errors import ConfigError

ID_INITS = ("xavier", "svd")  # xavier: random, Glorot-uniform; svd: svd_factors
DENSE_SVD_CELLS = 1 << 22  # a training matrix up to this many cells is decomposed exactly, as a dense array


def check_id_init(id_init: str, svd_norm: float) -> None:
    """``model.id_init`` is one of :data:`ID_INITS`; ``model.svd_norm`` is positive."""
    if id_init not in ID_INITS:
        raise ConfigError("model.id_init", f"expected one of {', '.join(ID_INITS)}, got '{id_init}'")
    check_range("model.svd_norm", svd_norm, low=0, low_open=True)


def svd_factors(num_users: int, num_items: int, users: Tensor, items: Tensor, dim: int,
                mean_norm: float) -> tuple[Tensor, Tensor]:
    r"""User and item factors from the truncated SVD of the binary training matrix, as PureSVD ranks with
    it (Cremonesi, Koren & Turrin, "Performance of Recommender Algorithms on Top-N Recommendation Tasks",
    RecSys 2010): with :math:`R \approx P_k \Sigma_k Q_k^\top`, the users get :math:`c\,P_k\Sigma_k^{1/2}` and
    the items :math:`c\,Q_k\Sigma_k^{1/2}`, so their dot products rank as the rank-k reconstruction does,
    and :math:`c` sets the mean row norm over users and items to ``mean_norm``. A model started there begins
    from a ranking of its training data, rather than from noise, and BPR refines it.

    :math:`k = \min(\mathrm{dim}, \min(U, I) - 1)`; columns beyond k are returned as NaN, for the caller to
    keep at its own initialisation. Items (and users) without interactions get zero rows. Deterministic: an
    exact dense SVD on small matrices, ARPACK from a fixed start vector on larger ones.

    Shapes: users, items (E,) long -> (U, dim), (I, dim) float32.
    """
    pairs = (users.cpu().numpy(), items.cpu().numpy())
    matrix = sp.csr_matrix((np.ones(len(users)), pairs), shape=(num_users, num_items))
    matrix.data[:] = 1.0  # repeated pairs count once
    rank = min(dim, min(num_users, num_items) - 1)
    user_factors = np.full((num_users, dim), np.nan)
    item_factors = np.full((num_items, dim), np.nan)
    if rank >= 1 and matrix.nnz:
        left, values, right_t = _truncated_svd(matrix, rank)
        root = np.sqrt(values)
        user_factors[:, :rank], item_factors[:, :rank] = left * root, right_t.T * root
        norms = np.linalg.norm(np.vstack([user_factors[:, :rank], item_factors[:, :rank]]), axis=1)
        scale = mean_norm / max(float(norms.mean()), 1e-12)
        user_factors[:, :rank] *= scale
        item_factors[:, :rank] *= scale
    return torch.from_numpy(user_factors).float(), torch.from_numpy(item_factors).float()


def _truncated_svd(matrix: sp.csr_matrix, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``rank`` largest singular triplets (any order). Shapes: (U, I) -> (U, k), (k,), (k, I)."""
    if matrix.shape[0] * matrix.shape[1] <= DENSE_SVD_CELLS:
        left, values, right_t = np.linalg.svd(matrix.toarray(), full_matrices=False)
        return left[:, :rank], values[:rank], right_t[:rank]
    start = np.full(min(matrix.shape), 1.0 / np.sqrt(min(matrix.shape)))
    return svds(matrix, k=rank, v0=start)


def start_from_svd(user_table: torch.nn.Embedding, item_table: torch.nn.Embedding, users: Tensor, items: Tensor,
                   mean_norm: float) -> None:
    """Overwrite the tables' rows with :func:`svd_factors` of the training pairs (``users``, ``items``),
    keeping their current values in the columns beyond the SVD's rank."""
    user_factors, item_factors = svd_factors(user_table.num_embeddings, item_table.num_embeddings, users.long(),
                                             items.long(), user_table.embedding_dim, mean_norm)
    with torch.no_grad():
        for table, factors in ((user_table, user_factors), (item_table, item_factors)):
            known = ~torch.isnan(factors)
            table.weight[known] = factors[known].to(table.weight.device)


__all__ = ["ID_INITS", "check_id_init", "start_from_svd", "svd_factors"]
