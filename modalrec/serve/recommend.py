"""Top-k recommendations for users of a trained run, in the dataset's own ids."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from modalrec.errors import DataFormatError, ModalrecError
from modalrec.evaluate.evaluator import top_k_deterministic
from modalrec.io_utils import write_with
from modalrec.train.run import LoadedRun

COLUMNS = ["user_id", "rank", "item_id", "score"]


def recommend_for_users(run: LoadedRun, user_ids: list[str] | None, k: int, *, batch_size: int = 1024) -> pd.DataFrame:
    """The k best items per user (all users when ``user_ids`` is None), training items excluded.

    Returns a frame with columns ``user_id, rank, item_id, score`` (rank 1 first). A user with fewer than k
    unseen items gets fewer rows.
    """
    if user_ids is None:
        users = np.arange(run.split.num_users)
    else:
        try:
            users = run.dataset.user_ids.indices_of(user_ids, kind="user id")
        except DataFormatError as exc:
            raise ModalrecError(f"recommend: {exc.detail}") from None
    seen = run.split.matrix("train")
    parts = []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = run.model.score(torch.from_numpy(batch).to(run.device)).float()
            sub = seen[batch]
            seen_rows = torch.from_numpy(np.repeat(np.arange(len(batch)), np.diff(sub.indptr))).to(run.device)
            scores[seen_rows, torch.from_numpy(sub.indices.astype(np.int64)).to(run.device)] = -torch.inf
            top = top_k_deterministic(scores, k)
            parts.append(_rows(run, batch, top.cpu().numpy(), torch.gather(scores, 1, top).cpu().numpy()))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def _rows(run: LoadedRun, users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    keep = np.isfinite(scores)  # masked (already seen) items never appear
    rank = np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)
    return pd.DataFrame({
        "user_id": run.dataset.user_ids.external[np.repeat(users, items.shape[1]).reshape(items.shape)[keep]],
        "rank": rank[keep],
        "item_id": run.dataset.item_ids.external[items[keep]],
        "score": scores[keep],
    })


def write_recommendations(rows: pd.DataFrame, path: str | None) -> None:
    """CSV ``user_id,rank,item_id,score`` to ``path`` (atomically) or to standard output."""
    if path:
        write_with(path, lambda handle: rows.to_csv(handle, index=False, float_format="%.6g"))
    else:
        rows.to_csv(sys.stdout, index=False, float_format="%.6g")
