"""Ranking metrics as pure functions and the batched full-ranking evaluator."""

from modalrec.evaluate.evaluator import FullRankingEvaluator, MetricTable
from modalrec.evaluate.metrics import METRICS, ranking_metrics

__all__ = ["METRICS", "FullRankingEvaluator", "MetricTable", "ranking_metrics"]
