"""``modalrec benchmark --protocol cold-items|sparsity``: models x seeds under a cold-start protocol.

``--set key=value`` applies to every model, ``--set MODEL:key=value`` to that model only (after the
common settings), e.g. a lower epoch cap for a slow model; ``{seed}`` in a value becomes the run's seed, so
that a cold-start model can refine the warm run of the same seed
(``dropoutnet:model.backbone_run=OUT/runs/lightgcn-seed{seed}``, with lightgcn earlier in ``--models``).
Settings are recorded in ``results.json``.

- **cold-items**: ColdRec's item cold start (``data.cold_item_fraction``, 20% unless set). One training per
  model and seed; each task (cold, warm, overall) is tested at the epoch its own validation set chose. Models
  that cannot score cold items (their registry capabilities) report warm and overall only.
- **sparsity**: every model at each training fraction (``data.train_fraction``); validation and test are the
  same for every fraction. The overall task is reported, with a chart of test recall@20 against the fraction.

The split is the same for every seed (``data.split_seed``); the seeds vary the models' initialisation and
sampling, so that per-user results pair across models and seeds. Every run goes to ``out/runs/...`` and a
finished run of the same configuration is read back, not retrained. ``results.json`` holds everything the
tables are made of; :func:`render_report` writes ``results.md``, ``results.csv``, ``runs.csv`` (and
``sparsity.png``) from it alone, so tables in the docs are regenerated, never typed.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modalrec.errors import ConfigError, ModalrecError
from modalrec.evaluate.significance import paired_test
from modalrec.evaluate.tasks import model_scores_cold_items
from modalrec.experiments.benchmark import csv_text
from modalrec.io_utils import write_text, write_with
from modalrec.train.run import RunConfig, resolve_config, train_run

log = logging.getLogger(__name__)

PROTOCOLS = ("cold-items", "sparsity")
TASKS = ("cold", "warm", "overall")
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
METRICS = ("recall@20", "ndcg@20", "recall@10", "recall@50")
RANK_METRIC = "recall@20"
DEFAULT_COLD_FRACTION = 0.2
RESULTS_FILE = "results.json"


def run_protocol(
    protocol: str,
    data_path: str | Path,
    models: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    fractions: Sequence[float] = FRACTIONS,
    command: str = "",
    train: bool = True,
) -> dict[str, Any]:
    """Train every model x seed (x fraction) under ``protocol`` and write the report; return ``results.json``.

    With ``train=False`` nothing is trained: the finished runs in ``out/runs`` are collected and every other
    run is reported as not run (a benchmark stopped early still gets its tables)."""
    if protocol not in PROTOCOLS:
        raise ConfigError("--protocol", f"expected one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    if not seeds or not models:
        raise ConfigError("--models" if not models else "--seeds", "needs at least one value")
    settings = list(overrides)
    if protocol == "cold-items" and not any(o.split("=")[0].strip() in ("data.cold_item_fraction",
                                                                           "cold_item_fraction") for o in settings):
        settings.append(f"data.cold_item_fraction={DEFAULT_COLD_FRACTION}")
    points = list(fractions) if protocol == "sparsity" else [1.0]
    if protocol == "sparsity" and any(not 0 < f <= 1 for f in points):
        raise ConfigError("--fractions", f"expected fractions in (0, 1], got {points}")
    unknown = sorted({o.split(":", 1)[0] for o in settings if _model_scoped(o)} - set(models))
    if unknown:
        raise ConfigError("--set", f"MODEL:key=value names {', '.join(unknown)}, which is not in --models")
    configs = [(fraction, resolve_config(data_path, model, config_file=config_file, seed=seed,
                                         overrides=[*_settings_for(model, settings, seed),
                                                    f"data.train_fraction={fraction}"]))
               for fraction in points for model in models for seed in seeds]  # every key checked before training
    runs = [_run(config, fraction, _run_dir(out, protocol, config, fraction), train) for fraction, config in configs]
    document = {
        "protocol": protocol,
        "data": str(data_path),
        "models": list(models),
        "seeds": list(seeds),
        "fractions": points,
        "overrides": settings,
        "command": command,
        "runs": [{k: v for k, v in run.items() if k != "per_user"} for run in runs],
        "tests": _paired_tests(runs, protocol, models[0]),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / RESULTS_FILE, json.dumps(document, indent=1, allow_nan=False) + "\n")
    render_report(document, out)
    return document


def _model_scoped(setting: str) -> bool:
    """``MODEL:key=value`` applies to one model only (e.g. a lower epoch cap for a slow model)."""
    return ":" in setting.split("=", 1)[0]


def _settings_for(model: str, settings: list[str], seed: int) -> list[str]:
    """The settings of ``model``'s run with ``seed``: the common ones, then its own; ``{seed}`` in a value
    becomes the seed (e.g. ``dropoutnet:model.backbone_run=OUT/runs/lightgcn-seed{seed}``)."""
    chosen = []
    for setting in settings:
        if not _model_scoped(setting):
            chosen.append(setting.replace("{seed}", str(seed)))
        elif setting.split(":", 1)[0] == model:
            chosen.append(setting.split(":", 1)[1].replace("{seed}", str(seed)))
    return chosen


def _run_dir(out: Path, protocol: str, config: RunConfig, fraction: float) -> Path:
    suffix = f"-frac{fraction:g}" if protocol == "sparsity" else ""
    return out / "runs" / f"{config.model_name}{suffix}-seed{config.seed}"


def _run(config: RunConfig, fraction: float, run_dir: Path, train: bool = True) -> dict[str, Any]:
    """Train (or read back) one run; its test metrics and validation recall@20 per task (to choose settings on
    validation), per-user recall@20 per task, or its error."""
    record: dict[str, Any] = {"model": config.model_name, "seed": config.seed, "fraction": fraction, "error": ""}
    if not train and not _finished(config, run_dir):
        record["error"] = "not run (collected before this run finished)"
        return record
    if not _finished(config, run_dir):
        try:
            train_run(config, run_dir, overwrite=True)
        except Exception as exc:  # a failed run is reported in its row; the others go on
            record["error"] = f"{type(exc).__name__}: {exc}"
            log.error("%s seed %d failed: %s", config.model_name, config.seed, record["error"])
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text(run_dir / "error.txt", traceback.format_exc())
            return record
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    tasks = metrics.get("tasks") or {"overall": {"valid": metrics["valid"], "test": metrics["test"]}}
    record.update({
        "tasks": {task: {m: float(parts["test"][m]) for m in METRICS if m in parts["test"]}
                  for task, parts in tasks.items()},
        "valid": {task: float(parts["valid"][RANK_METRIC]) for task, parts in tasks.items()
                  if RANK_METRIC in parts.get("valid", {})},
        "best_epochs": metrics.get("task_best_epochs", {"overall": metrics["best_epoch"]}),
        "epochs": int(metrics["epochs"]),
        "train_seconds": float(metrics["train_seconds"]),
        "buckets": {("overall" if task == "test" else task): {b: v.get(RANK_METRIC) for b, v in buckets.items()}
                    for task, buckets in metrics.get("test_buckets", {}).items()},
        "per_user": _per_user(run_dir / "test_per_user.npz", list(tasks)),
    })
    if "tasks" in metrics and not model_scores_cold_items(config.model_name):
        record["tasks"].pop("cold", None)
        record["valid"].pop("cold", None)
    return record


def _finished(config: RunConfig, run_dir: Path) -> bool:
    """The run folder holds a finished run of exactly ``config``. Its recorded config is read through today's
    dataclasses, so a key added since then with a default equal to what the run did does not make it stale."""
    try:
        recorded = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
        same = json.loads(json.dumps(recorded.to_dict())) == json.loads(json.dumps(config.to_dict()))
        return same and (run_dir / "metrics.json").is_file()
    except (OSError, ValueError, KeyError, ModalrecError):
        return False


def _per_user(path: Path, tasks: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as saved:
        if f"{tasks[0]}__users" not in saved.files:
            return {"overall": (saved["users"], saved[RANK_METRIC])}
        return {task: (saved[f"{task}__users"], saved[f"{task}__{RANK_METRIC}"]) for task in tasks}


def _paired_tests(runs: list[dict[str, Any]], protocol: str, reference: str) -> dict[str, Any]:
    """Per task (cold-items) or per fraction (sparsity): the best model by mean test recall@20, and each other
    model against it on per-user recall@20 averaged over seeds (paired t-test and Wilcoxon); for sparsity
    also each model against ``reference`` (the first model), with its relative difference in mean."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["error"]:
            continue
        for task in run["tasks"]:
            key = task if protocol == "cold-items" else f"{run['fraction']:g}"
            if protocol == "sparsity" and task != "overall":
                continue
            groups.setdefault(key, []).append({**run, "task": task})
    tests: dict[str, Any] = {}
    for key, members in groups.items():
        by_model: dict[str, list[np.ndarray]] = {}
        users: dict[str, np.ndarray] = {}
        for run in members:
            task_users, values = run["per_user"][run["task"]]
            by_model.setdefault(run["model"], []).append(values)
            users[run["model"]] = task_users
        means = {model: float(np.mean([v.mean() for v in values])) for model, values in by_model.items()}
        best = max(means, key=lambda m: means[m])
        tests[key] = {"best": best, "against": _against(best, by_model, users)}
        if protocol == "sparsity" and reference in by_model:  # every model against the first one, per fraction
            tests[key]["reference"] = reference
            tests[key]["versus_reference"] = {
                model: {**test, "relative": means[model] / means[reference] - 1 if means[reference] else None}
                for model, test in _against(reference, by_model, users, first=False).items()}
    return tests


def _against(anchor: str, by_model: dict[str, list[np.ndarray]], users: dict[str, np.ndarray],
             first: bool = True) -> dict[str, dict[str, Any]]:
    """Paired tests of ``anchor`` against every other model (``first``: anchor - model; else model - anchor)
    on per-user recall@20 averaged over seeds."""
    result = {}
    for model, values in by_model.items():
        if model == anchor or not np.array_equal(users[model], users[anchor]):
            continue
        mine, theirs = np.mean(by_model[anchor], axis=0), np.mean(values, axis=0)
        t = paired_test(mine, theirs) if first else paired_test(theirs, mine)
        result[model] = {"users": t.users, "mean_difference": t.mean_difference, "t_test_p": t.t_test_p,
                         "wilcoxon_p": t.wilcoxon_p}
    return result


# ---------------------------------------------------------------------------------------------
# Report files, from results.json alone

def read_results(path: Path) -> dict[str, Any]:
    """``results.json`` of a protocol benchmark (a file, or the folder holding it)."""
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModalrecError(f"{file}: not a readable benchmark result ({exc})") from None
    if not isinstance(document, dict) or document.get("protocol") not in PROTOCOLS:
        raise ModalrecError(f"{file}: not a protocol benchmark result (no 'protocol' of {', '.join(PROTOCOLS)})")
    return document


def render_report(document: dict[str, Any], out: Path) -> None:
    """Write ``results.md``, ``results.csv`` and ``runs.csv`` (and ``sparsity.png``) from ``document``."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.md", render_markdown(document))
    write_text(out / "results.csv", csv_text(summary_rows(document)))
    write_text(out / "runs.csv", csv_text(_run_rows(document)))
    if document["protocol"] == "sparsity":
        write_sparsity_chart(document, out / "sparsity.png")


def _stats(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summary_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model (and fraction, for sparsity) and task: mean and std over seeds of each metric."""
    rows = []
    for fraction in document["fractions"]:
        for model in document["models"]:
            runs = [r for r in document["runs"] if r["model"] == model and r["fraction"] == fraction]
            ok = [r for r in runs if not r["error"]]
            tasks = TASKS if document["protocol"] == "cold-items" else ("overall",)
            for task in tasks:
                done = [r for r in ok if task in r["tasks"]]
                if not done and ok:
                    continue  # a task the model does not do (cold for ID-only models)
                row: dict[str, Any] = {"model": model, "fraction": fraction, "task": task, "seeds_ok": len(done),
                                       "seeds_failed": len(runs) - len(ok)}
                for metric in METRICS:
                    row[f"{metric}_mean"], row[f"{metric}_std"] = _stats([r["tasks"][task][metric] for r in done
                                                                          if metric in r["tasks"][task]])
                row["train_seconds_mean"] = _stats([r["train_seconds"] for r in done])[0]
                row["best_epoch_mean"] = _stats([float(r["best_epochs"].get(task, -1)) for r in done])[0]
                row["epochs_mean"] = _stats([float(r["epochs"]) for r in done])[0]
                rows.append(row)
    return rows


def _run_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for run in document["runs"]:
        for task, metrics in (run.get("tasks") or {"": {}}).items():
            rows.append({"model": run["model"], "seed": run["seed"], "fraction": run["fraction"], "task": task,
                         "error": run["error"], **{m: metrics.get(m, "") for m in METRICS},
                         "best_epoch": run.get("best_epochs", {}).get(task, ""), "epochs": run.get("epochs", ""),
                         "train_seconds": run.get("train_seconds", "")})
    return rows


def _pm(mean: float, std: float) -> str:
    return "—" if np.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def render_markdown(document: dict[str, Any]) -> str:
    """The Markdown tables of a protocol benchmark, made from ``results.json`` alone."""
    rows = summary_rows(document)
    seeds = ", ".join(map(str, document["seeds"]))
    lines = [f"Protocol `{document['protocol']}` on `{document['data']}`, seeds {seeds}; settings: "
             f"`{' '.join(document['overrides']) or 'defaults'}`.", ""]
    if document["protocol"] == "cold-items":
        lines += _cold_table(document, rows)
    else:
        lines += _sparsity_table(document, rows)
    lines += _tests_table(document)
    if document["protocol"] == "sparsity":
        lines += _reference_table(document)
    lines += _bucket_table(document)
    failures = [r for r in document["runs"] if r["error"]]
    if failures:
        lines += ["", "Failed runs:", ""] + [f"- {r['model']} seed {r['seed']} (fraction {r['fraction']:g}): "
                                             f"{r['error']}" for r in failures]
    return "\n".join(lines) + "\n"


def _cold_table(document: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    lookup = {(r["model"], r["task"]): r for r in rows}
    head = ["model", *(f"{task} recall@20" for task in TASKS), *(f"{task} ndcg@20" for task in TASKS),
            "train s", "epochs (cold/warm/overall chosen)", "runs ok"]
    lines = ["Test metrics, mean ± std over seeds; each task at the epoch its own validation set chose "
             "(— : the model cannot score cold items).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(document["models"], key=lambda m: -_mean(lookup, m, "cold", "overall"))
    for model in order:
        cells = [model]
        for metric in ("recall@20", "ndcg@20"):
            for task in TASKS:
                row = lookup.get((model, task))
                cells.append(_pm(row[f"{metric}_mean"], row[f"{metric}_std"]) if row else "—")
        overall = lookup.get((model, "overall"))
        done = overall is not None and overall["seeds_ok"] > 0
        cells.append(f"{overall['train_seconds_mean']:.1f}" if done and overall is not None else "—")
        chosen = "/".join(f"{lookup[(model, t)]['best_epoch_mean']:.0f}" if (model, t) in lookup and done else "—"
                          for t in TASKS)
        cells.append(f"{overall['epochs_mean']:.0f} ({chosen})" if done and overall is not None else "—")
        runs = [r for r in document["runs"] if r["model"] == model]
        cells.append(f"{sum(1 for r in runs if not r['error'])}/{len(runs)}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _mean(lookup: dict[tuple[str, str], dict[str, Any]], model: str, *tasks: str) -> float:
    for task in tasks:
        row = lookup.get((model, task))
        if row and not np.isnan(row["recall@20_mean"]):
            return float(row["recall@20_mean"]) + (0.0 if task == tasks[0] else -1.0)
    return -2.0


def _sparsity_table(document: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    lookup = {(r["model"], r["fraction"]): r for r in rows}
    fractions = document["fractions"]
    head = ["model", *(f"{f:.0%} of training" for f in fractions)]
    lines = ["Test recall@20 (overall task), mean ± std over seeds, by the fraction of each user's training "
             "interactions kept (validation and test unchanged).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in document["models"]:
        cells = [model] + [_pm(lookup[(model, f)]["recall@20_mean"], lookup[(model, f)]["recall@20_std"])
                           if (model, f) in lookup else "—" for f in fractions]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _tests_table(document: dict[str, Any]) -> list[str]:
    kind = "task" if document["protocol"] == "cold-items" else "fraction"
    lines = ["", f"Paired tests per {kind}: the best model by mean test recall@20 against each other model, on "
             "per-user recall@20 averaged over seeds.", "",
             f"| {kind} | best | model | users | mean difference (best - model) | t-test p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|"]
    for key, test in document["tests"].items():
        for model, t in test["against"].items():
            lines.append(f"| {key} | {test['best']} | {model} | {t['users']} | {t['mean_difference']:+.4f} | "
                         f"{t['t_test_p']:.3g} | {t['wilcoxon_p']:.3g} |")
    return lines


def _reference_table(document: dict[str, Any]) -> list[str]:
    reference = document["models"][0]
    fractions = [f"{f:g}" for f in document["fractions"]]
    lines = ["", f"Each model against {reference} (the first model) at each fraction: relative difference of mean "
             "test recall@20, and the paired t-test p on per-user recall@20 averaged over seeds.", "",
             "| model | " + " | ".join(f"{float(f):.0%}" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
    for model in document["models"][1:]:
        cells = []
        for key in fractions:
            test = document["tests"].get(key, {}).get("versus_reference", {}).get(model)
            cells.append("—" if test is None or test["relative"] is None
                         else f"{test['relative']:+.1%} (p={test['t_test_p']:.2g})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _bucket_table(document: dict[str, Any]) -> list[str]:
    top = max(document["fractions"])
    runs = [r for r in document["runs"] if not r["error"] and r.get("buckets") and r["fraction"] == top]
    if not runs:
        return []
    labels = list(next(iter(runs[0]["buckets"].values())))
    where = f" at {top:.0%} of training" if document["protocol"] == "sparsity" else ""
    lines = ["", f"Test recall@20 by user activity (number of training interactions), mean over seeds{where}:", "",
             "| model | task | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for model in document["models"]:
        mine = [r for r in runs if r["model"] == model]
        for task in TASKS:
            if not any(task in r["buckets"] for r in mine):
                continue
            cells = []
            for label in labels:
                values = [r["buckets"][task][label] for r in mine if r["buckets"].get(task, {}).get(label) is not None]
                cells.append(f"{np.mean(values):.4f}" if values else "—")
            lines.append(f"| {model} | {task} | " + " | ".join(cells) + " |")
    return lines


def write_sparsity_chart(document: dict[str, Any], path: Path) -> None:
    """Test recall@20 against the training fraction, one line per model (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary_rows(document)
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    for model in document["models"]:
        mine = sorted((r for r in rows if r["model"] == model and r["seeds_ok"]), key=lambda r: r["fraction"])
        if mine:
            axis.errorbar([r["fraction"] for r in mine], [r["recall@20_mean"] for r in mine],
                          yerr=[r["recall@20_std"] for r in mine], marker="o", capsize=3, label=model)
    axis.set_xscale("log")
    axis.set_xticks(document["fractions"], [f"{f:.0%}" for f in document["fractions"]])
    axis.set_xlabel("fraction of each user's training interactions kept")
    axis.set_ylabel("test recall@20 (mean over seeds)")
    data = Path(document["data"])
    axis.set_title(f"Sparsity: {data.parent.name}/{data.name}" if data.parent.name else f"Sparsity: {data.name}")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110), mode="wb")
    plt.close(fig)
