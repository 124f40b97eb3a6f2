"""Top-k recommendations for users of a trained run, in the dataset's own ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from modalrec.errors import DataFormatError, ModalrecError
from modalrec.evaluate.evaluator import top_k_deterministic
from modalrec.train.run import LoadedRun

COLUMNS = ["user_id", "rank", "item_id", "score", "source"]
FALLBACKS = ("error", "popular")


def recommend_for_users(run: LoadedRun, user_ids: list[str] | None, k: int, *, batch_size: int = 1024,
                        unknown: str = "error") -> pd.DataFrame:
    """The k best items per user (all users when ``user_ids`` is None), training items excluded.

    Returns a frame with columns ``user_id, rank, item_id, score, source`` (rank 1 first). A user with fewer
    than k unseen items gets fewer rows. ``source`` is ``model`` for a user the model was trained on. A user
    id that is not in the data raises with ``unknown="error"``; with ``unknown="popular"`` it, and a user of
    the data with no training interaction, gets the k items with the most training interactions (``score`` =
    that count, ``source`` = ``popular``), the service's fallback too.
    """
    if unknown not in FALLBACKS:
        raise ModalrecError(f"recommend: unknown={unknown!r}; expected one of {', '.join(FALLBACKS)}")
    if unknown == "popular":  # a user of the data with no training interaction has an untrained vector
        lookup = run.dataset.user_ids.lookup()
        trained = np.bincount(run.split.train.users, minlength=run.split.num_users) > 0
        wanted = [str(u) for u in (run.dataset.user_ids.external if user_ids is None else user_ids)]
        known = [u for u in wanted if u in lookup and trained[lookup[u]]]
        if len(known) < len(wanted):
            return _with_popular(run, wanted, recommend_for_users(run, known, k, batch_size=batch_size), k)
        users = np.asarray([lookup[u] for u in wanted], dtype=np.int64)
    elif user_ids is None:
        users = np.arange(run.split.num_users)
    else:
        try:
            users = run.dataset.user_ids.indices_of(user_ids, kind="user id")
        except DataFormatError as exc:
            raise ModalrecError(f"recommend: {exc.detail} (an unknown user gets popular items only when asked)") \
                from None
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


def _with_popular(run: LoadedRun, user_ids: list[str], known: pd.DataFrame, k: int) -> pd.DataFrame:
    """``known``'s rows plus the popular items for every user id it lacks, in the order of ``user_ids``."""
    counts = np.bincount(run.split.train.items, minlength=run.split.num_items)
    top = np.argsort(-counts, kind="stable")[:k]
    popular = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "item_id": run.dataset.item_ids.external[top],
                            "score": counts[top].astype(np.float32), "source": "popular"})
    by_user = {str(user): rows for user, rows in known.groupby("user_id", sort=False)} if len(known) else {}
    parts = [by_user[str(u)] if str(u) in by_user else popular.assign(user_id=str(u))[COLUMNS] for u in user_ids]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def _rows(run: LoadedRun, users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    keep = np.isfinite(scores)  # masked (already seen) items never appear
    rank = np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)
    return pd.DataFrame({
        "user_id": run.dataset.user_ids.external[np.repeat(users, items.shape[1]).reshape(items.shape)[keep]],
        "rank": rank[keep],
        "item_id": run.dataset.item_ids.external[items[keep]],
        "score": scores[keep],
        "source": "model",
    })
