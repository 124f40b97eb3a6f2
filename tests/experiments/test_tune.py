"""Tuning: validation-only trials, one test evaluation for the chosen configuration, a readable log."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from modalrec.errors import ConfigError
from modalrec.train import trainer as trainer_module
from modalrec.experiments.tune import Dimension, search_space, tune


def test_search_space_follows_the_config_fields() -> None:
    assert set(search_space("bpr")) == {"train.learning_rate", "model.reg_weight", "model.embedding_dim"}
    assert search_space("lightgcn")["model.num_layers"] == Dimension("int", 1, 4)


def test_trials_never_touch_test_and_the_best_is_tested_once(
    tiny_mmrec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts: list[str] = []
    original = trainer_module.Trainer.evaluate_splits

    def spy(self: trainer_module.Trainer, names: list[str]) -> object:
        parts.extend(names)
        return original(self, names)

    monkeypatch.setattr(trainer_module.Trainer, "evaluate_splits", spy)
    out = tmp_path / "tuning"
    result = tune(tiny_mmrec, "bpr", 3, out, overrides=["epochs=3", "progress=false", "batch_size=16"])
    assert parts.count("test") == 1 and parts[-1] == "test"
    assert set(result.best_params) == set(search_space("bpr"))
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert max(float(r["valid"]) for r in rows) == pytest.approx(result.best_valid)
    log = (out / "tuning.md").read_text()
    assert "evaluated once, for the chosen configuration" in log
    assert (out / "best" / "metrics.json").is_file()


def test_zero_trials(tiny_mmrec: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1 trial"):
        tune(tiny_mmrec, "bpr", 0, tmp_path)
