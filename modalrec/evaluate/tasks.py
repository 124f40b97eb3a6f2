"""The cold / warm / overall tasks of the item cold-start protocol, and user-activity buckets.

Each task ranks its own candidate items for the users who have targets among them; training items are masked
as always:

- **overall**: every item is a candidate; the targets are all of the part's interactions.
- **warm**: only warm items are candidates and targets.
- **cold**: only cold items are candidates and targets. ``eval.cold_candidates=split`` ranks the cold items
  of that part (the cold-test items for test); ``all`` ranks every cold item, as ColdRec's code does.

Under the protocol (:attr:`~modalrec.data.split.Split.item_roles`) cold means held out; without it, cold
means no training interaction. Model selection uses the validation set of ``eval.task``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from modalrec.config import EVAL_TASKS, EvalConfig
from modalrec.data.split import Split
from modalrec.errors import ModalrecError
from modalrec.evaluate.evaluator import FullRankingEvaluator, MetricTable

PARTS = ("valid", "test")


def task_candidates(split: Split, task: str, part: str, cold_candidates: str = "split") -> np.ndarray | None:
    """(num_items,) bool: the items ``task`` ranks for ``part``; None for every item (overall)."""
    if task == "overall":
        return None
    cold = split.cold_items("any")
    if task == "warm":
        return ~cold
    if task != "cold":
        raise ModalrecError(f"unknown task '{task}'; expected one of {', '.join(EVAL_TASKS)}")
    return cold if cold_candidates == "all" else split.cold_items(part)


def task_evaluator(split: Split, eval_config: EvalConfig, task: str, part: str) -> FullRankingEvaluator:
    """The evaluator of ``part`` (valid or test) for ``task``: its candidates ranked, its targets counted."""
    candidates = task_candidates(split, task, part, eval_config.cold_candidates)
    targets = split.matrix(part)
    if candidates is not None:
        targets = (targets @ sp.diags(candidates.astype(np.float32))).tocsr()
    exclude = split.matrix("train")
    if part == "test" and eval_config.mask_valid_at_test:
        exclude = exclude + split.matrix("valid")
    return FullRankingEvaluator(targets, exclude, eval_config.ks, eval_config.user_batch_size, candidates)


def task_evaluators(split: Split, eval_config: EvalConfig, task: str | None = None) -> dict[str, FullRankingEvaluator]:
    """``{"valid": ..., "test": ...}`` for ``task`` (default ``eval.task``)."""
    chosen = task or eval_config.task
    return {part: task_evaluator(split, eval_config, chosen, part) for part in PARTS}


def protocol_tasks(split: Split, scores_cold_items: bool) -> list[str]:
    """The tasks a report covers under the cold protocol: all three (warm and overall for a model that cannot
    score cold items); none without the protocol (the run's valid and test are its overall task)."""
    if split.item_roles is None:
        return []
    return ["cold", "warm", "overall"] if scores_cold_items else ["warm", "overall"]


def model_scores_cold_items(model_name: str) -> bool:
    """Whether the registered model scores items it never trained on from their content (its declared
    ``cold_items`` capability)."""
    from modalrec.models.registry import get_model

    return get_model(model_name).capabilities.cold_items


# ---------------------------------------------------------------------------------------------
# User activity buckets

def bucket_labels(bounds: Iterable[int]) -> list[str]:
    """Names of the buckets that ``bounds`` (5, 20) make: ``1-5``, ``6-20``, ``21+``."""
    edges = list(bounds)
    lows = [1, *(b + 1 for b in edges)]
    return [str(low) if low == high else f"{low}-{high}" for low, high in zip(lows, edges, strict=False)] + [
        f"{lows[-1]}+"]


def activity_buckets(table: MetricTable, training_counts: np.ndarray, bounds: Iterable[int],
                     metric: str = "recall@20") -> dict[str, dict[str, float | None]]:
    """``metric`` averaged over the evaluated users of each activity bucket (by number of training
    interactions), with the bucket's user count: ``{"1-5": {"users": 12, "recall@20": 0.1}, ...}``. A bucket
    with no evaluated user has the mean None."""
    edges = list(bounds)
    which = np.searchsorted(np.asarray(edges), training_counts[table.users], side="left")
    values = table.per_user[metric]
    result: dict[str, dict[str, float | None]] = {}
    for index, label in enumerate(bucket_labels(edges)):
        chosen = values[which == index]
        result[label] = {"users": len(chosen), metric: float(chosen.mean()) if len(chosen) else None}
    return result
