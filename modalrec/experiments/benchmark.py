"""``modalrec benchmark``: every model with every seed, tables with mean ± std, significance, a chart.

Each run selects its epoch on validation (the Trainer's early stopping) and is tested once. A run that
fails or diverges is reported in its row; the benchmark carries on with the others. A run folder that
already holds a finished run of the same configuration is read back, not retrained, so an interrupted
benchmark continues where it stopped, and partial benchmarks into one folder add up.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modalrec.errors import ConfigError
from modalrec.evaluate.significance import PairedTest, paired_test
from modalrec.io_utils import write_text, write_with
from modalrec.train.run import RunConfig, resolve_config, train_run

log = logging.getLogger(__name__)

TABLE_METRICS = tuple(f"{m}@{k}" for m in ("recall", "ndcg", "precision") for k in (10, 20, 50))
RANK_METRIC = "recall@20"


@dataclass
class RunRecord:
    model: str
    seed: int
    error: str = ""
    test: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    seconds_per_epoch: float = 0.0
    best_epoch: int = -1
    epochs: int = 0
    per_user: np.ndarray | None = None  # test RANK_METRIC per evaluated user
    users: np.ndarray | None = None


@dataclass
class BenchmarkReport:
    runs: list[RunRecord]
    best_model: str
    tests: dict[str, PairedTest]  # model -> test against the best model

    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.runs))

    def ok(self, model: str) -> list[RunRecord]:
        return [r for r in self.runs if r.model == model and not r.error]


def run_benchmark(
    data_path: str | Path,
    models: list[str],
    seeds: list[int],
    out: Path,
    *,
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> BenchmarkReport:
    """Train ``models`` x ``seeds`` into ``out/runs/<model>-seed<seed>`` and write the report files."""
    if not seeds:
        raise ConfigError("--seeds", "the seed list is empty; pass at least one seed")
    if not models:
        raise ConfigError("--models", "no model given")
    configs = {m: [resolve_config(data_path, m, config_file=config_file, overrides=overrides, seed=s) for s in seeds]
               for m in models}  # validate every name and key before the first run
    runs = [_run_one(config, out / "runs" / f"{config.model_name}-seed{config.seed}")
            for model_configs in configs.values() for config in model_configs]
    report = _compare(runs)
    write_report(report, out)
    return report


def _run_one(config: RunConfig, run_dir: Path) -> RunRecord:
    finished = finished_run(config, run_dir)
    if finished is not None:
        log.info("%s seed %d: reusing the finished run in %s", config.model_name, config.seed, run_dir)
        return finished
    record = RunRecord(config.model_name, config.seed)
    try:
        result = train_run(config, run_dir, overwrite=True)
    except Exception as exc:  # a crashed or diverged run is reported, not fatal
        record.error = f"{type(exc).__name__}: {exc}"
        log.error("%s seed %d failed: %s", config.model_name, config.seed, record.error)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "error.txt", traceback.format_exc())
        return record
    epoch_seconds = [h["train_seconds"] for h in result.history]
    record.test = result.test
    record.train_seconds = result.train_seconds
    record.seconds_per_epoch = statistics.median(epoch_seconds) if epoch_seconds else 0.0
    record.best_epoch, record.epochs = result.best_epoch, result.epochs
    if result.test_table is not None:
        record.per_user = result.test_table.per_user[RANK_METRIC]
        record.users = result.test_table.users
    return record


def finished_run(config: RunConfig, run_dir: Path) -> RunRecord | None:
    """The record of a finished run of exactly ``config`` in ``run_dir``, or None (absent, other config,
    unfinished or unreadable: then the run is trained again)."""
    try:
        recorded = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        if recorded != json.loads(json.dumps(config.to_dict())):
            return None
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        with open(run_dir / "history.csv", encoding="utf-8", newline="") as handle:
            epoch_seconds = [float(row["train_seconds"]) for row in csv.DictReader(handle)]
        with np.load(run_dir / "test_per_user.npz") as arrays:
            users, per_user = arrays["users"], arrays[RANK_METRIC]
        return RunRecord(
            config.model_name, config.seed, test={k: float(v) for k, v in metrics["test"].items()},
            train_seconds=float(metrics["train_seconds"]),
            seconds_per_epoch=statistics.median(epoch_seconds) if epoch_seconds else 0.0,
            best_epoch=int(metrics["best_epoch"]), epochs=int(metrics["epochs"]), per_user=per_user, users=users,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _compare(runs: list[RunRecord]) -> BenchmarkReport:
    means = {}
    for model in dict.fromkeys(r.model for r in runs):
        ok = [r for r in runs if r.model == model and not r.error]
        if ok:
            means[model] = float(np.mean([r.test[RANK_METRIC] for r in ok]))
    if not means:
        return BenchmarkReport(runs, "", {})
    best = max(means, key=lambda m: means[m])
    best_users = _per_user_mean([r for r in runs if r.model == best and not r.error])
    tests = {}
    for model in means:
        if model != best:
            other = _per_user_mean([r for r in runs if r.model == model and not r.error])
            tests[model] = paired_test(best_users, other)
    return BenchmarkReport(runs, best, tests)


def _per_user_mean(records: list[RunRecord]) -> np.ndarray:
    """A model's per-user metric averaged over its seeds (every run shares the split, hence the users)."""
    return np.mean([r.per_user for r in records if r.per_user is not None], axis=0)


# ---------------------------------------------------------------------------------------------
# Report files

def write_report(report: BenchmarkReport, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "runs.csv", _runs_csv(report))
    write_text(out / "results.csv", _summary_csv(report))
    write_text(out / "results.md", format_markdown(report))
    _write_chart(report, out / "results.png")


@dataclass(frozen=True)
class ModelSummary:
    model: str
    seeds_ok: int
    seeds_failed: int
    mean: dict[str, float]  # metric -> mean over successful seeds (nan when none)
    std: dict[str, float]
    train_seconds: float
    seconds_per_epoch: float


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(report: BenchmarkReport) -> list[ModelSummary]:
    """One row per model, best mean test recall@20 first, failed models last."""
    rows = []
    for model in report.models():
        ok = report.ok(model)
        stats = {metric: _mean_std([r.test[metric] for r in ok]) for metric in TABLE_METRICS}
        rows.append(ModelSummary(
            model=model,
            seeds_ok=len(ok),
            seeds_failed=sum(1 for r in report.runs if r.model == model and r.error),
            mean={m: v[0] for m, v in stats.items()},
            std={m: v[1] for m, v in stats.items()},
            train_seconds=_mean_std([r.train_seconds for r in ok])[0],
            seconds_per_epoch=_mean_std([r.seconds_per_epoch for r in ok])[0],
        ))
    return sorted(rows, key=lambda r: -r.mean[RANK_METRIC] if r.seeds_ok else 1.0)


def csv_text(rows: list[dict[str, object]]) -> str:
    """``rows`` as CSV text with a header taken from the first row's keys; empty for no rows."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _summary_csv(report: BenchmarkReport) -> str:
    rows: list[dict[str, object]] = []
    for summary in summarize(report):
        row: dict[str, object] = {"model": summary.model, "seeds_ok": summary.seeds_ok,
                                  "seeds_failed": summary.seeds_failed}
        for metric in TABLE_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = summary.mean[metric], summary.std[metric]
        row["train_seconds_mean"], row["seconds_per_epoch_mean"] = summary.train_seconds, summary.seconds_per_epoch
        rows.append(row)
    return csv_text(rows)


def _runs_csv(report: BenchmarkReport) -> str:
    rows: list[dict[str, object]] = []
    for r in report.runs:
        row: dict[str, object] = {"model": r.model, "seed": r.seed, "error": r.error}
        row.update({m: r.test.get(m, "") for m in TABLE_METRICS})
        row.update({"best_epoch": r.best_epoch, "epochs": r.epochs, "train_seconds": round(r.train_seconds, 3),
                    "seconds_per_epoch": round(r.seconds_per_epoch, 4)})
        rows.append(row)
    return csv_text(rows)


def format_markdown(report: BenchmarkReport) -> str:
    seeds = sorted({r.seed for r in report.runs})
    head = ["model", *[f"test {m}" for m in TABLE_METRICS], "train s", "s/epoch", "runs ok"]
    lines = [f"Test metrics, mean ± std over seeds {', '.join(map(str, seeds))} (epoch chosen on validation).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summarize(report):
        name = f"**{row.model}**" if row.model == report.best_model else row.model
        cells = [name, *[_pm(row.mean[m], row.std[m]) for m in TABLE_METRICS],
                 f"{row.train_seconds:.1f}", f"{row.seconds_per_epoch:.3f}",
                 f"{row.seeds_ok}/{row.seeds_ok + row.seeds_failed}"]
        lines.append("| " + " | ".join(cells) + " |")
    if report.tests:
        lines += ["", f"Paired tests against the best model ({report.best_model}) on per-user test {RANK_METRIC} "
                  "(averaged over seeds):", "",
                  "| model | users | mean difference (best - model) | paired t-test p | Wilcoxon p |",
                  "|---|---|---|---|---|"]
        for model, t in report.tests.items():
            lines.append(f"| {model} | {t.users} | {t.mean_difference:+.4f} | {t.t_test_p:.3g} | {t.wilcoxon_p:.3g} |")
    failures = [r for r in report.runs if r.error]
    if failures:
        lines += ["", "Failed runs:", ""] + [f"- {r.model} seed {r.seed}: {r.error}" for r in failures]
    return "\n".join(lines) + "\n"


def _pm(mean: float, std: float) -> str:
    return "failed" if np.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def _write_chart(report: BenchmarkReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summarize(report) if r.seeds_ok]
    fig, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4))
    positions = np.arange(len(rows))
    for offset, metric, colour in ((-0.2, "recall@20", "tab:blue"), (0.2, "ndcg@20", "tab:orange")):
        axis.bar(positions + offset, [r.mean[metric] for r in rows], 0.4, yerr=[r.std[metric] for r in rows],
                 label=f"test {metric}", color=colour, capsize=3)
    axis.set_xticks(positions, [r.model for r in rows])
    axis.set_ylabel("mean over seeds (± std)")
    axis.legend()
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110), mode="wb")
    plt.close(fig)
