"""Metric names (``recall@20``): the leaf that config and evaluate both read, so neither imports the other."""

from __future__ import annotations

METRICS = ("recall", "precision", "ndcg", "hit", "map", "mrr")


def parse_metric_name(name: str) -> tuple[str, int]:
    """``"recall@20"`` -> ``("recall", 20)``; raises ValueError naming the valid metrics."""
    metric, _, k = name.partition("@")
    if metric not in METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"expected METRIC@K with METRIC one of {', '.join(METRICS)}, got '{name}'")
    return metric, int(k)
