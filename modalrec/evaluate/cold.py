"""Cold-start evaluation: test interactions whose item has no training interaction."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from modalrec.config import EvalConfig
from modalrec.data.split import Split
from modalrec.evaluate.evaluator import FullRankingEvaluator


def cold_items(split: Split) -> np.ndarray:
    """(num_items,) bool: items with no training interaction."""
    return np.bincount(split.train.items, minlength=split.num_items) == 0


def cold_item_evaluator(split: Split, eval_config: EvalConfig) -> FullRankingEvaluator:
    """Full ranking over all items (training items masked), counting only cold test items as targets."""
    train = split.matrix("train")
    test = split.matrix("test")
    keep = sp.diags(cold_items(split).astype(np.float32))
    exclude = train + split.matrix("valid") if eval_config.mask_valid_at_test else train
    return FullRankingEvaluator((test @ keep).tocsr(), exclude, eval_config.ks, eval_config.user_batch_size)
