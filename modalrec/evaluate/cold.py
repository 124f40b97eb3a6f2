"""Cold-start evaluation: the cold task's test ranking (see :mod:`modalrec.evaluate.tasks`)."""

from __future__ import annotations

import numpy as np

from modalrec.config import EvalConfig
from modalrec.data.split import Split
from modalrec.evaluate.evaluator import FullRankingEvaluator
from modalrec.evaluate.tasks import task_evaluator


def cold_items(split: Split) -> np.ndarray:
    """(num_items,) bool: the cold items (held out under the cold protocol, else never trained on)."""
    return split.cold_items("any")


def cold_item_evaluator(split: Split, eval_config: EvalConfig) -> FullRankingEvaluator:
    """The cold task on test: only cold items are ranked and counted as targets."""
    return task_evaluator(split, eval_config, "cold", "test")
