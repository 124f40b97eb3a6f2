"""Paired significance tests between models on per-user metric values (the offline half of A/B testing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    """Model ``a`` against model ``b`` on the same users: mean difference and two p-values."""

    users: int
    mean_difference: float  # mean over users of a - b
    t_test_p: float  # paired t-test
    wilcoxon_p: float  # Wilcoxon signed-rank test (zero differences dropped); 1.0 when all differences are 0


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Compare two models' per-user values (aligned arrays over the same users)."""
    if a.shape != b.shape:
        raise ValueError(f"per-user arrays must align, got {a.shape} and {b.shape}")
    difference = a - b
    if len(difference) < 2 or not np.any(difference):
        return PairedTest(len(difference), float(difference.mean()) if len(difference) else 0.0, 1.0, 1.0)
    t_p = float(stats.ttest_rel(a, b).pvalue)
    w_p = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    return PairedTest(len(difference), float(difference.mean()), t_p, w_p)
