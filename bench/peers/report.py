"""Summaries and the generated Markdown of ``bench/peers/mmrec.py``'s result files (no MMRec needed).

A result file (``results.json``) holds the harness's settings and one record per child run:
``{"round", "side": "mmrec"|"modalrec", "model", "load_before", "load_after", "peak_rss_mib", "wall_s",
"returncode", "error", "result": {...}}`` where ``result`` is what ``mmrec_child.py`` or
``modalrec_child.py`` wrote. Everything shown is computed here from those records, so a table can always
be regenerated from the file it came from.

Pairing: in each round both sides train the same model one after the other (the order alternates from
round to round); a ratio is MMRec's seconds over modalrec's within one round, and the table shows the
range of those ratios over the rounds with the median seconds of each side.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable
from typing import Any

THRESHOLD_SHARE = 0.97  # time to quality: 0.97 x MMRec's best validation recall@20 in the same round
TARGET_TIME_TO_QUALITY = 5.0  # issue 19, item 3
TARGET_EVAL = 10.0  # issue 19, item 4


def has_dot_product_embeddings(model: str) -> bool:
    """Whether modalrec registers ``model`` as scoring by dot products of embeddings: the models the evaluation
    target covers (read from the registry, so that no model is left out of it)."""
    from modalrec.models.registry import get_model

    return get_model(model).capabilities.dot_product


def time_to_threshold(epochs: list[dict[str, float]], threshold: float) -> tuple[float, int] | None:
    """(seconds since the process started, epoch index) when validation recall@20 first reaches ``threshold``."""
    for index, epoch in enumerate(epochs):
        if epoch.get("valid_recall@20", 0.0) >= threshold:
            return epoch["elapsed_s"], index
    return None


def ok_runs(results: dict[str, Any], model: str, side: str) -> dict[int, dict[str, Any]]:
    """round -> the child's result, for the runs of ``model`` on ``side`` that finished."""
    return {run["round"]: run for run in results.get("runs", [])
            if run["model"] == model and run["side"] == side and run.get("result") and not run.get("error")}


def models_in(results: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for run in results.get("runs", []):
        if run["model"] not in seen:
            seen.append(run["model"])
    return seen


def _ratios(pairs: Iterable[tuple[float | None, float | None]]) -> list[float]:
    return [a / b for a, b in pairs if a and b]


def summarize_model(results: dict[str, Any], model: str) -> dict[str, Any]:
    """Medians per side, per-round ratios, time to quality and final quality for one model."""
    theirs, ours = ok_runs(results, model, "mmrec"), ok_runs(results, model, "modalrec")
    rounds = sorted(set(theirs) & set(ours))
    summary: dict[str, Any] = {"model": model, "rounds": rounds}
    for side, runs in (("mmrec", theirs), ("modalrec", ours)):
        res = [runs[r]["result"] for r in rounds]
        summary[side] = {
            "epoch_s": _median(x.get("epoch_s") for x in res),
            "eval_s": _median(x.get("eval_s") for x in res),
            "joint_eval_s": _median(x.get("joint_eval_s") for x in res),
            "setup_s": _median(x.get("setup_s") for x in res),
            "peak_rss_mib": max((runs[r].get("peak_rss_mib") or 0.0 for r in rounds), default=None),
            "epochs_run": [x.get("epochs_run") for x in res],
            "best_epoch": [x.get("best_epoch") for x in res],
            "capped": [bool(x.get("capped")) for x in res],
            "best_valid_recall@20": [x.get("best_valid", {}).get("recall@20") for x in res],
            "test_recall@20": [x.get("test", {}).get("recall@20") for x in res],
            "test_ndcg@20": [x.get("test", {}).get("ndcg@20") for x in res],
        }
    pairs = [(theirs[r]["result"], ours[r]["result"]) for r in rounds]
    summary["epoch_ratio"] = _ratios((a.get("epoch_s"), b.get("epoch_s")) for a, b in pairs)
    summary["eval_ratio"] = _ratios((a.get("eval_s"), b.get("eval_s")) for a, b in pairs)
    summary["joint_eval_ratio"] = _ratios((a.get("eval_s"), b.get("joint_eval_s")) for a, b in pairs)
    quality = []
    for a, b in pairs:
        best = a.get("best_valid", {}).get("recall@20")
        if not best:
            continue
        threshold = THRESHOLD_SHARE * best
        theirs_hit, ours_hit = time_to_threshold(a["epochs"], threshold), time_to_threshold(b["epochs"], threshold)
        quality.append({
            "threshold": threshold, "mmrec_converged": not a.get("capped"),
            "mmrec_s": theirs_hit[0] if theirs_hit else None, "mmrec_epoch": theirs_hit[1] if theirs_hit else None,
            "modalrec_s": ours_hit[0] if ours_hit else None, "modalrec_epoch": ours_hit[1] if ours_hit else None,
            "ratio": theirs_hit[0] / ours_hit[0] if theirs_hit and ours_hit else None})
    summary["time_to_quality"] = quality
    return summary


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def load_range(results: dict[str, Any]) -> tuple[float, float] | None:
    loads = [run[key][0] for run in results.get("runs", []) for key in ("load_before", "load_after") if run.get(key)]
    return (min(loads), max(loads)) if loads else None


# -- rendering ----------------------------------------------------------------------------------------

def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _span(values: list[float], suffix: str = "x") -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.1f}{suffix}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}{suffix}"


def _list(values: list[Any], digits: int = 4) -> str:
    shown = [_num(v, digits) if isinstance(v, float) else "-" if v is None else str(v) for v in values]
    return ", ".join(shown) if shown else "-"


def _settings_text(settings: dict[str, Any]) -> str:
    mode = settings.get("settings", "same")
    given = [f"{label} {settings[key]}" for key, label in (("batch_size", "batch"), ("learning_rate", "learning rate"),
                                                           ("patience", "patience"))
             if settings.get(key) is not None]
    if settings.get("epochs") is not None:
        given.append(f"at most {settings['epochs']} epochs")
    if settings.get("max_seconds"):
        given.append(f"at most {settings['max_seconds']:.0f} s of training")
    head = ("same on both sides (MMRec's first grid values)" if mode == "same"
            else "each library's own model and training defaults")
    return head + f", seed {settings.get('seed', '?')}" + ("; " + ", ".join(given) if given else "")


def header_lines(results: dict[str, Any], source: str) -> list[str]:
    settings = results.get("settings", {})
    load = load_range(results)
    lines = [
        f"Generated by `bench/peers/render.py` from `{source}`; do not edit by hand.",
        "",
        f"- measured: {results.get('date', '?')} on {results.get('cpus', '?')} CPU cores, "
        f"{settings.get('threads', '?')} thread(s) per run, torch {results.get('torch', '?')}",
        f"- modalrec commit {results.get('modalrec_commit', '?')}"
        + (" (with uncommitted changes)" if results.get("modalrec_dirty") else "")
        + f"; MMRec commit {results.get('mmrec_commit', '?')}",
        f"- dataset `{results.get('dataset', '?')}`; settings: {_settings_text(settings)}",
        f"- 1-minute load average before/after the runs: "
        + (f"{load[0]:.2f}-{load[1]:.2f}" if load else "not recorded")
        + f" on {results.get('cpus', '?')} cores"
        + (" (the machine was shared: these timings are contended, rerun on an idle machine before quoting them)"
           if load and load[1] > 1.2 * float(settings.get("threads", 1) or 1) else ""),
        f"- command: `{results.get('command', '?')}`",
    ]
    failed = [run for run in results.get("runs", []) if run.get("error")]
    if failed:
        lines.append("- failed runs: " + "; ".join(f"{run['model']} on {run['side']}, round {run['round']}: "
                                                  f"{run['error']}" for run in failed))
    skipped = results.get("skipped", {})
    if skipped:
        lines.append("- skipped: " + "; ".join(f"{model}: {why}" for model, why in skipped.items()))
    return lines


def render_markdown(results: dict[str, Any], source: str = "results.json") -> str:
    """A page for one result file."""
    return "# Speed side by side with MMRec\n\n" + render_section(results, source, level=2)


def render_pages(files: list[tuple[str, dict[str, Any], str]], title: str = "Speed side by side with MMRec") -> str:
    """A page for several result files: (heading, results, source) each, in order."""
    parts = [f"# {title}\n"]
    for heading, results, source in files:
        parts.append(f"## {heading}\n\n" + render_section(results, source, level=3))
    return "\n".join(parts)


def render_section(results: dict[str, Any], source: str, level: int) -> str:
    """The header, the tables and the targets of one result file, under headings of ``level``."""
    h = "#" * level
    summaries = [summarize_model(results, model) for model in models_in(results)]
    out = header_lines(results, source)
    out += ["", f"{h} Training epoch and evaluation", "",
            "Seconds are medians over the rounds; ratios are MMRec's seconds over modalrec's within each round "
            "(range over rounds). Evaluation: one validation plus one test pass, full ranking; `apart` is valid "
            "then test as the trainer runs them, `joint` scores and ranks each user once for both.", "",
            "| model | rounds | epoch s MMRec | epoch s modalrec | epoch ratio | eval s MMRec | eval s apart | "
            "eval s joint | eval ratio apart | eval ratio joint | peak RSS MiB MMRec / modalrec |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        a, b = s["mmrec"], s["modalrec"]
        out.append(f"| {s['model']} | {len(s['rounds'])} | {_num(a['epoch_s'])} | {_num(b['epoch_s'])} | "
                   f"{_span(s['epoch_ratio'])} | {_num(a['eval_s'], 3)} | {_num(b['eval_s'], 3)} | "
                   f"{_num(b['joint_eval_s'], 3)} | {_span(s['eval_ratio'])} | {_span(s['joint_eval_ratio'])} | "
                   f"{_num(a['peak_rss_mib'], 0)} / {_num(b['peak_rss_mib'], 0)} |")
    out += ["", f"{h} Time to quality and final quality", "",
            f"Seconds from the process start (imports, data, model build included) until validation recall@20 "
            f"first reaches {THRESHOLD_SHARE} x MMRec's best validation recall@20 of the same round; test metrics "
            "at each side's best validation epoch. A threshold from an MMRec run cut by the epoch or time cap is "
            "provisional (marked `capped`).", "",
            "| model | round | threshold | MMRec s (epoch) | modalrec s (epoch) | ratio | test R@20 MMRec / modalrec | "
            "test N@20 MMRec / modalrec | epochs run MMRec / modalrec |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        a, b = s["mmrec"], s["modalrec"]
        for i, (r, q) in enumerate(zip(s["rounds"], s["time_to_quality"])):
            mark = "" if q["mmrec_converged"] else " capped"
            out.append(
                f"| {s['model']} | {r} | {q['threshold']:.4f}{mark} | "
                f"{_num(q['mmrec_s'], 1)} ({_num_int(q['mmrec_epoch'])}) | "
                f"{_num(q['modalrec_s'], 1)} ({_num_int(q['modalrec_epoch'])}) | "
                f"{_ratio(q['ratio'])} | "
                f"{_num(a['test_recall@20'][i], 4)} / {_num(b['test_recall@20'][i], 4)} | "
                f"{_num(a['test_ndcg@20'][i], 4)} / {_num(b['test_ndcg@20'][i], 4)} | "
                f"{a['epochs_run'][i]} / {b['epochs_run'][i]} |")
    out += ["", f"{h} Targets of issue 19", ""]
    out += target_lines(summaries)
    return "\n".join(out) + "\n"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _num_int(value: int | None) -> str:
    return "-" if value is None else str(value)


def target_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """One line per model and target: met, not met, or not measured, from the numbers above."""
    lines = []
    for s in summaries:
        quality = [q for q in s["time_to_quality"] if q["mmrec_converged"]]
        ratios = [q["ratio"] for q in quality]
        a, b = s["mmrec"], s["modalrec"]
        if not quality:
            verdict = "not measured (no MMRec run ran to its early stop)"
        elif any(r is None for r in ratios):
            verdict = "**not met** (modalrec did not reach the threshold in some round)"
        else:
            better = all(x is not None and y is not None and y >= x
                         for x, y in zip(a["test_recall@20"], b["test_recall@20"]))
            low = min(r for r in ratios if r is not None)
            met = low >= TARGET_TIME_TO_QUALITY and better
            verdict = (f"{'met' if met else '**not met**'}: {_span([r for r in ratios if r is not None])}"
                       + ("" if better else ", and modalrec's final test recall@20 is below MMRec's in some round"))
        lines.append(f"- {s['model']}, time to quality >= {TARGET_TIME_TO_QUALITY:g}x at equal or better final test "
                     f"recall@20: {verdict}")
        if has_dot_product_embeddings(s["model"]):
            joint = s["joint_eval_ratio"]
            if not joint:
                verdict = "not measured"
            else:
                verdict = (f"{'met' if min(joint) >= TARGET_EVAL else '**not met**'}: joint {_span(joint)}, "
                           f"apart {_span(s['eval_ratio'])}")
            lines.append(f"- {s['model']}, evaluation >= {TARGET_EVAL:g}x: {verdict}")
    return lines


CSV_FIELDS = ("round", "side", "model", "epoch_s", "eval_s", "joint_eval_s", "setup_s", "epochs_run", "best_epoch",
              "capped", "valid_recall@20", "test_recall@20", "test_ndcg@20", "peak_rss_mib", "wall_s",
              "load_before", "load_after", "error")


def to_csv(results: dict[str, Any]) -> str:
    """One row per child run."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for run in results.get("runs", []):
        res = run.get("result") or {}
        writer.writerow({
            "round": run["round"], "side": run["side"], "model": run["model"],
            "epoch_s": res.get("epoch_s"), "eval_s": res.get("eval_s"), "joint_eval_s": res.get("joint_eval_s"),
            "setup_s": res.get("setup_s"), "epochs_run": res.get("epochs_run"), "best_epoch": res.get("best_epoch"),
            "capped": res.get("capped"), "valid_recall@20": res.get("best_valid", {}).get("recall@20"),
            "test_recall@20": res.get("test", {}).get("recall@20"), "test_ndcg@20": res.get("test", {}).get("ndcg@20"),
            "peak_rss_mib": run.get("peak_rss_mib"), "wall_s": run.get("wall_s"),
            "load_before": (run.get("load_before") or [None])[0], "load_after": (run.get("load_after") or [None])[0],
            "error": run.get("error", "")})
    return buffer.getvalue()
