"""The benchmark: every model x seed, failures reported in their row, tables and significance tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from modalrec.errors import ConfigError, ModalrecError
from modalrec.experiments import benchmark as bench
from modalrec.evaluate.significance import paired_test

FAST = ["epochs=3", "progress=false", "batch_size=16"]


def test_benchmark_reports_every_run_and_survives_a_failure(
    tiny_mmrec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train = bench.train_run

    def flaky(config: bench.RunConfig, run_dir: Path, overwrite: bool = False) -> object:
        if config.model_name == "bpr" and config.seed == 2:
            raise ModalrecError("the loss became nan at epoch 1")
        return real_train(config, run_dir, overwrite=overwrite)

    monkeypatch.setattr(bench, "train_run", flaky)
    out = tmp_path / "bench"
    report = bench.run_benchmark(tiny_mmrec, ["bpr", "vbpr"], [1, 2], out, overrides=FAST)
    assert [(r.model, r.seed, bool(r.error)) for r in report.runs] == [
        ("bpr", 1, False), ("bpr", 2, True), ("vbpr", 1, False), ("vbpr", 2, False)]
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and "nan" in rows[1]["error"]
    summary = (out / "results.md").read_text()
    assert "| 1/2 |" in summary and "Failed runs:" in summary and "bpr seed 2" in summary
    assert "paired t-test p" in summary
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    means = {r.model: r for r in bench.summarize(report)}
    vbpr_runs = [r.test["recall@20"] for r in report.ok("vbpr")]
    assert means["vbpr"].mean["recall@20"] == pytest.approx(np.mean(vbpr_runs))
    assert means["vbpr"].std["recall@20"] == pytest.approx(np.std(vbpr_runs, ddof=1))


def test_empty_seed_list(tiny_mmrec: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seed list is empty"):
        bench.run_benchmark(tiny_mmrec, ["bpr"], [], tmp_path)


def test_paired_test_detects_a_consistent_difference() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(200)
    better = paired_test(base + 0.05 + rng.normal(0, 0.01, 200), base)
    assert better.mean_difference == pytest.approx(0.05, abs=0.005) and better.t_test_p < 1e-10
    same = paired_test(base, base.copy())
    assert same.t_test_p == 1.0 and same.wilcoxon_p == 1.0


def test_a_finished_run_of_the_same_config_is_reused_and_a_changed_config_retrains(
    tiny_mmrec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bench"
    first = bench.run_benchmark(tiny_mmrec, ["bpr"], [1], out, overrides=FAST).runs[0]
    trained: list[int] = []
    real_train = bench.train_run

    def counting(config: bench.RunConfig, run_dir: Path, overwrite: bool = False) -> object:
        trained.append(config.train.epochs)
        return real_train(config, run_dir, overwrite=overwrite)

    monkeypatch.setattr(bench, "train_run", counting)
    again = bench.run_benchmark(tiny_mmrec, ["bpr"], [1], out, overrides=FAST).runs[0]
    assert trained == [] and not again.error
    assert again.test == first.test and again.epochs == first.epochs and again.best_epoch == first.best_epoch
    assert again.per_user is not None and first.per_user is not None
    assert np.array_equal(again.per_user, first.per_user)
    (out / "runs" / "bpr-seed1" / "metrics.json").unlink()  # an unfinished run is trained again
    bench.run_benchmark(tiny_mmrec, ["bpr"], [1], out, overrides=FAST)
    changed = bench.run_benchmark(tiny_mmrec, ["bpr"], [1], out, overrides=[*FAST, "epochs=2"]).runs[0]
    assert trained == [3, 2] and changed.epochs <= 2
