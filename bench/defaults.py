"""Choosing a model's training defaults on validation over several re-splits (issue 19).

Each candidate setting trains on per-user random re-splits of one dataset (MMRec's 80/10/10 rule, one
``data.split_seed`` per re-split) with several model seeds; every run writes one JSON file (per-epoch
validation recall@20, the best epoch, validation and test metrics there) into ``--out``. A run whose file
exists is skipped, so an interrupted sweep continues where it stopped. ``report`` turns the files into a
Markdown table: mean ± std of validation and test recall@20 at the best validation epoch, and the epochs
each setting needs to reach the reference setting's best validation recall@20 on the same re-split (0.97 x
and 1.0 x the mean over the reference's seeds, and the best of them).

    python bench/defaults.py run --model lightgcn --out docs/benchmarks/results/defaults-lightgcn \\
        --setting "default:" --setting "lr5e-3-plateau:train.learning_rate=0.005 train.lr_schedule=plateau"
    python bench/defaults.py report --out docs/benchmarks/results/defaults-lightgcn --reference default

Selection uses validation only; the test columns are reported so that a new default can be checked not to
lose final quality. Run one process at a time with OMP_NUM_THREADS=1: the epoch counts do not depend on the
machine's load, the seconds do.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DATA = "../shared/datasets/ml100k-posters/mmrec"
METRIC = "recall@20"


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``"name:key=value key=value"`` -> (name, overrides); ``"default:"`` is the model's defaults."""
    name, _, overrides = text.partition(":")
    if not name or "/" in name:
        raise SystemExit(f"--setting {text!r}: expected NAME:KEY=VALUE ...")
    return name, overrides.split()


RUN_FILES = "run-files"  # one JSON file per training (not "runs/": .gitignore keeps run folders out)
GIVEN = "given"  # as a split seed: the dataset's own split instead of a re-split


def split_seed_arg(text: str) -> int | str:
    return text if text == GIVEN else int(text)


def run_file(out: Path, setting: str, split_seed: int | str, seed: int) -> Path:
    return out / RUN_FILES / f"{setting}__split{split_seed}__seed{seed}.json"


def train_one(data: str, model: str, overrides: list[str], split_seed: int | str, seed: int) -> dict[str, Any]:
    """Train in memory (no run folder) and return what the report needs."""
    from modalrec.data.prepare import prepare_data
    from modalrec.train.run import build_model, configure_threads, model_inputs, resolve_config
    from modalrec.train.trainer import Trainer

    split = ["data.split=given"] if split_seed == GIVEN else ["data.split=random", f"data.split_seed={split_seed}"]
    config = resolve_config(data, model, seed=seed, overrides=[*split, "train.progress=false", *overrides])
    configure_threads(config.train.threads)
    prepared = prepare_data(config.data_path, config.data)
    trained = build_model(config, model_inputs(prepared.dataset, prepared.split))
    start = time.perf_counter()
    result = Trainer(trained, prepared.split, config.train, config.eval, seed=seed).fit()
    return {
        "model": model, "overrides": overrides, "split_seed": split_seed, "seed": seed,
        "train": {key: getattr(config.train, key) for key in (
            "learning_rate", "lr_schedule", "lr_floor", "lr_decay", "lr_patience", "batch_size", "epochs",
            "patience")},
        "best_epoch": result.best_epoch + 1, "epochs": result.epochs,
        "valid": result.valid, "test": result.test,
        "valid_curve": [record.get(METRIC) for record in result.history],
        "learning_rates": [record.get("learning_rate") for record in result.history],
        "train_seconds": result.train_seconds, "wall_seconds": time.perf_counter() - start,
        "commit": _commit(),
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run(args: argparse.Namespace) -> None:
    settings = [parse_setting(text) for text in args.setting]
    (args.out / RUN_FILES).mkdir(parents=True, exist_ok=True)
    for split_seed in args.split_seeds:
        for seed in args.seeds:
            for name, overrides in settings:
                path = run_file(args.out, name, split_seed, seed)
                if path.exists():
                    continue
                record = {"setting": name, **train_one(args.data, args.model, overrides, split_seed, seed)}
                path.write_text(json.dumps(record, indent=1) + "\n")
                print(f"{name} split {split_seed} seed {seed}: best epoch {record['best_epoch']} "
                      f"valid {record['valid'][METRIC]:.4f} test {record['test'][METRIC]:.4f} "
                      f"({record['wall_seconds']:.0f} s)", flush=True)


def first_epoch_reaching(curve: list[float | None], threshold: float) -> int | None:
    """The 1-based epoch whose validation value first reaches ``threshold``; None when none does."""
    for epoch, value in enumerate(curve, start=1):
        if value is not None and value >= threshold:
            return epoch
    return None


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def load_runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((out / RUN_FILES).glob("*.json"))]


def report_table(runs: list[dict[str, Any]], reference: str, threshold: float | None = None) -> str:
    """The Markdown summary: one row per setting, over the runs of every (re-split, seed) pair that the
    reference setting also ran, so that each row compares the same runs. The quality targets are per
    re-split: the mean of the reference's best validation values over its seeds, and the best of them;
    ``threshold``, when given, adds the epochs to that validation value (e.g. 0.97 x a peer's best)."""
    mean_target: dict[Any, float] = {}
    best_target: dict[Any, float] = {}
    for split_seed in {r["split_seed"] for r in runs if r["setting"] == reference}:
        bests = [max(v for v in r["valid_curve"] if v is not None) for r in runs
                 if r["setting"] == reference and r["split_seed"] == split_seed]
        mean_target[split_seed], best_target[split_seed] = statistics.mean(bests), max(bests)
    pairs = {(r["split_seed"], r["seed"]) for r in runs if r["setting"] == reference}
    lines = ["| setting | runs | valid recall@20 | test recall@20 | best epoch | epochs to 0.97 x ref. mean "
             "(reached) | epochs to ref. mean (reached) | epochs to ref. best run (reached) |"
             + ("" if threshold is None else f" epochs to {threshold:g} (reached) |"),
             "|---|---|---|---|---|---|---|---|" + ("" if threshold is None else "---|")]
    for setting in dict.fromkeys([reference, *(r["setting"] for r in runs)]):  # the reference first
        chosen = [r for r in runs if r["setting"] == setting and (r["split_seed"], r["seed"]) in pairs]
        if not chosen:
            continue
        cells = [setting, str(len(chosen)),
                 _mean_std([r["valid"][METRIC] for r in chosen], 4), _mean_std([r["test"][METRIC] for r in chosen], 4),
                 _mean_std([float(r["best_epoch"]) for r in chosen], 0)]
        fixed = {} if threshold is None else {r["split_seed"]: threshold for r in chosen}
        for targets, factor in ((mean_target, 0.97), (mean_target, 1.0), (best_target, 1.0), (fixed, 1.0)):
            if not targets:
                continue
            reached = [first_epoch_reaching(r["valid_curve"], factor * targets[r["split_seed"]]) for r in chosen]
            epochs = [float(e) for e in reached if e is not None]
            cells.append(f"{_mean_std(epochs, 0)} ({len(epochs)}/{len(chosen)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def with_section(page: str, name: str, table: str) -> str:
    """``page`` with its ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->`` section replaced by ``table``."""
    pattern = rf"<!-- generated: {re.escape(name)} -->.*?<!-- end: {re.escape(name)} -->"
    if not re.search(pattern, page, flags=re.S):
        raise SystemExit(f"the page has no '<!-- generated: {name} -->' ... '<!-- end: {name} -->' section")
    return re.sub(pattern, lambda _: f"<!-- generated: {name} -->\n{table}<!-- end: {name} -->", page, flags=re.S)


def report(args: argparse.Namespace) -> None:
    runs = load_runs(args.out)
    if not runs:
        raise SystemExit(f"{args.out / RUN_FILES}: no result files")
    table = report_table(runs, args.reference, args.threshold)
    (args.out / "summary.md").write_text(table)
    if args.page is not None:
        args.page.write_text(with_section(args.page.read_text(), args.out.name, table))
    sys.stdout.write(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="train every setting on every re-split and seed")
    runner.add_argument("--model", required=True)
    runner.add_argument("--data", default=DATA)
    runner.add_argument("--setting", action="append", required=True, help='"NAME:KEY=VALUE ..." (repeatable)')
    runner.add_argument("--split-seeds", type=split_seed_arg, nargs="+", default=[11, 12, 13],
                        help="seeds of the per-user random re-splits; 'given' is the dataset's own split")
    runner.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    runner.add_argument("--out", type=Path, required=True)
    reporter = commands.add_parser("report", help="summarise the result files as a Markdown table")
    reporter.add_argument("--out", type=Path, required=True)
    reporter.add_argument("--reference", default="default")
    reporter.add_argument("--threshold", type=float, help="also the epochs to this validation recall@20")
    reporter.add_argument("--page", type=Path, help="also rewrite this page's section named after --out's folder")
    args = parser.parse_args(argv)
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
