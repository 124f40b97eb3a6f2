"""The cold / warm / overall tasks rank only their candidates; model selection by task; activity buckets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from modalrec.config import EvalConfig
from modalrec.data.split import COLD_TEST, COLD_VALID, WARM, Pairs, Split
from modalrec.errors import ConfigError
from modalrec.evaluate.evaluator import MetricTable, make_evaluators
from modalrec.evaluate.tasks import activity_buckets, bucket_labels, protocol_tasks, task_evaluator
from modalrec.train.run import resolve_config, train_run
from tests.conftest import block_dataset, write_mmrec

# items 0-3 warm, 4-5 cold-valid, 6-7 cold-test; user 0 trains on 0, 1
ROLES = np.asarray([WARM] * 4 + [COLD_VALID] * 2 + [COLD_TEST] * 2, dtype=np.int8)


def toy_split() -> Split:
    return Split(2, 8, train=Pairs(np.asarray([0, 0, 1]), np.asarray([0, 1, 0])),
                 valid=Pairs(np.asarray([0, 0]), np.asarray([2, 5])),
                 test=Pairs(np.asarray([0, 0]), np.asarray([3, 7])), item_roles=ROLES)


def scores_of(row: list[float]) -> object:
    table = torch.tensor([row, row])
    return lambda users: table[users]


def test_cold_valid_ranks_only_the_cold_valid_items() -> None:
    scores = scores_of([9, 9, 9, 9, 1, 2, 9, 9])  # target 5 is the best cold-valid item, below every other
    evaluator = task_evaluator(toy_split(), EvalConfig(ks=(1,)), "cold", "valid")
    table = evaluator.evaluate(scores)  # type: ignore[arg-type]
    assert table.mean()["hit@1"] == 1.0 and evaluator.targets.indices.tolist() == [5]
    every_cold = task_evaluator(toy_split(), EvalConfig(ks=(1,), cold_candidates="all"), "cold", "valid")
    assert every_cold.evaluate(scores).mean()["hit@1"] == 0.0  # type: ignore[arg-type]


def test_cold_task_does_not_rank_warm_items() -> None:
    split = toy_split()
    evaluator = task_evaluator(split, EvalConfig(ks=(1,)), "cold", "test")
    table = evaluator.evaluate(scores_of([9, 9, 9, 9, 9, 9, 1, 2]))  # type: ignore[arg-type]
    assert table.mean()["hit@1"] == 1.0  # 7 is the best cold-test item although every warm item scores more
    overall = task_evaluator(split, EvalConfig(ks=(1,)), "overall", "test").evaluate(
        scores_of([9, 9, 9, 9, 9, 9, 1, 2]))  # type: ignore[arg-type]
    assert overall.mean()["hit@1"] == 0.0
    every_cold = task_evaluator(split, EvalConfig(ks=(1,), cold_candidates="all"), "cold", "test").evaluate(
        scores_of([0, 0, 0, 0, 3, 0, 1, 2]))  # type: ignore[arg-type]
    assert every_cold.mean()["hit@1"] == 0.0  # ColdRec's candidates: cold-valid item 4 is ranked too


def test_warm_task_ranks_only_warm_items_and_counts_only_warm_targets() -> None:
    evaluator = task_evaluator(toy_split(), EvalConfig(ks=(1,)), "warm", "test")
    assert evaluator.targets.nnz == 1 and evaluator.targets.indices.tolist() == [3]
    table = evaluator.evaluate(scores_of([0, 0, 1, 2, 9, 9, 9, 9]))  # type: ignore[arg-type]
    assert table.mean()["hit@1"] == 1.0


def test_model_selection_follows_eval_task() -> None:
    split = toy_split()
    for task, expected in (("cold", [5]), ("warm", [2]), ("overall", [2, 5])):
        valid = make_evaluators(split, EvalConfig(task=task))["valid"]
        assert sorted(valid.targets.indices.tolist()) == expected


def test_protocol_tasks() -> None:
    assert protocol_tasks(toy_split(), True) == ["cold", "warm", "overall"]
    assert protocol_tasks(toy_split(), False) == ["warm", "overall"]
    assert protocol_tasks(dataclasses.replace(toy_split(), item_roles=None), True) == []  # no protocol


def test_activity_buckets() -> None:
    assert bucket_labels((5, 20)) == ["1-5", "6-20", "21+"]
    table = MetricTable(np.asarray([0, 1, 2, 3]), {"recall@20": np.asarray([1.0, 0.0, 0.5, 0.25])})
    counts = np.asarray([5, 6, 20, 21])
    buckets = activity_buckets(table, counts, (5, 20))
    assert buckets == {"1-5": {"users": 1, "recall@20": 1.0}, "6-20": {"users": 2, "recall@20": 0.25},
                       "21+": {"users": 1, "recall@20": 0.25}}
    assert bucket_labels((1, 2, 40)) == ["1", "2", "3-40", "41+"]
    assert activity_buckets(table, counts, (1, 2, 40))["41+"] == {"users": 0, "recall@20": None}


@pytest.mark.parametrize("bad", ["task=coldest", "cold_candidates=some", "user_buckets=20,5"])
def test_bad_eval_settings(bad: str) -> None:
    key, value = bad.split("=")
    with pytest.raises(ConfigError, match=f"eval.{key}"):
        resolve_config(".", "bpr", overrides=[f"eval.{key}={value}"])


def test_run_reports_every_task_and_refuses_cold_selection_for_id_models(tmp_path: Path) -> None:
    rows, features = block_dataset(num_users=30, num_items=30)
    data = write_mmrec(tmp_path / "d", [(u, i, 0) for u, i, _ in rows], features={"image": features})
    common = ["data.split=random", "data.cold_item_fraction=0.2", "train.epochs=2", "train.progress=false"]
    config = resolve_config(data, "vbpr", overrides=[*common, "eval.task=cold"])
    result = train_run(config, tmp_path / "vbpr")
    metrics = json.loads((tmp_path / "vbpr" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"cold", "warm", "overall"}
    assert metrics["tasks"]["cold"]["valid"] == pytest.approx(result.valid)  # selection used the cold validation
    assert set(metrics["test_buckets"]["cold"]) == {"1-5", "6-20", "21+"}
    assert set(metrics["task_best_epochs"]) == {"cold", "warm", "overall"}
    history = (tmp_path / "vbpr" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"cold_recall@20", "warm_recall@20", "overall_recall@20"} <= set(history)  # each task selects its epoch
    with np.load(tmp_path / "vbpr" / "test_per_user.npz") as saved:
        assert {"cold__users", "cold__recall@20", "warm__users", "overall__recall@20"} <= set(saved.files)
    with pytest.raises(ConfigError, match="eval.task.*cannot score cold items"):
        train_run(resolve_config(data, "bpr", overrides=[*common, "eval.task=cold"]), tmp_path / "bpr")
    bpr = train_run(resolve_config(data, "bpr", overrides=common), tmp_path / "bpr2")
    assert set(bpr.tasks) == {"warm", "overall"}
