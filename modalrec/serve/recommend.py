"""Top-k recommendations for users of a trained run, in the dataset's own ids."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from modalrec.errors import DataFormatError, ModalrecError
from modalrec.evaluate.evaluator import top_k_deterministic
from modalrec.io_utils import write_with
from modalrec.train.run import LoadedRun


@dataclass(frozen=True)
class Recommendation:
    user_id: str
    rank: int  # 1-based
    item_id: str
    score: float


def recommend_for_users(
    run: LoadedRun, user_ids: list[str] | None, k: int, *, batch_size: int = 1024
) -> list[Recommendation]:
    """The k best items per user (all users when ``user_ids`` is None), training items excluded."""
    if user_ids is None:
        users = np.arange(run.split.num_users)
    else:
        try:
            users = run.dataset.user_ids.indices_of(user_ids, kind="user id")
        except DataFormatError as exc:
            raise ModalrecError(f"recommend: {exc.detail}") from None
    seen = run.split.matrix("train")
    rows: list[Recommendation] = []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = run.model.score(torch.from_numpy(batch).to(run.device)).float()
            sub = seen[batch]
            seen_rows = torch.from_numpy(np.repeat(np.arange(len(batch)), np.diff(sub.indptr)))
            scores[seen_rows, torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf
            top = top_k_deterministic(scores, k)
            top_scores = torch.gather(scores, 1, top).cpu().numpy()
            for row, user in enumerate(batch):
                for rank, (item, score) in enumerate(zip(top[row].tolist(), top_scores[row], strict=True), 1):
                    if np.isfinite(score):
                        rows.append(Recommendation(run.dataset.user_ids.external[user], rank,
                                                   run.dataset.item_ids.external[item], float(score)))
    return rows


def write_recommendations(rows: list[Recommendation], path: str | None) -> None:
    """CSV ``user_id,rank,item_id,score`` to ``path`` (atomically) or to standard output."""
    lines = ["user_id,rank,item_id,score"] + [
        f"{_csv(r.user_id)},{r.rank},{_csv(r.item_id)},{r.score:.6g}" for r in rows
    ]
    text = "\n".join(lines) + "\n"
    if path:
        write_with(path, lambda handle: handle.write(text))
    else:
        sys.stdout.write(text)


def _csv(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value
