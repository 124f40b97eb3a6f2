"""Quick cold / warm / overall checks of one model on ml100k-posters under the item cold-start protocol.

    python bench/cold_quick.py MODEL SEED EPOCHS [KEY=VALUE ...]   # one run, one JSON line appended to --out
    python bench/cold_quick.py --render [--out FILE]               # Markdown: means over seeds, then every run
    python bench/cold_quick.py --render --pool-splits [--out FILE] # means over split seeds x seeds

Each run holds out 20% of the items (``data.cold_item_fraction=0.2``), selects each task's epoch on that
task's validation set, and records recall@20 of the cold, warm and overall tasks (valid and test). The
figures are small-budget checks (few epochs, a contended machine), not the benchmark of
``modalrec benchmark --protocol cold-items``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

DATA = "../shared/datasets/ml100k-posters/mmrec"
DEFAULT_OUT = Path("docs/benchmarks/results/cold_quick.jsonl")
COLUMNS = ["cold/valid", "cold/test", "warm/valid", "warm/test", "overall/valid", "overall/test"]
PER_SPLIT_SETTINGS = ("data.split_seed=", "model.backbone_run=")  # what --pool-splits pools over


def quick_overrides(epochs: int, sets: list[str]) -> list[str]:
    """A quick check's settings: 20% cold items, patience 10, the cold task choosing the epoch (unless ``sets``
    names another ``eval.task``), then ``sets``."""
    task = [] if any(s.startswith("eval.task=") for s in sets) else ["eval.task=cold"]
    return [f"train.epochs={epochs}", "train.progress=false", "data.cold_item_fraction=0.2", "train.patience=10",
            *task, *sets]


def run_one(model: str, seed: int, epochs: int, sets: list[str], out: Path, runs: Path) -> dict[str, object]:
    from modalrec.train.run import resolve_config, train_run

    config = resolve_config(DATA, model, overrides=quick_overrides(epochs, sets), seed=seed)
    start = time.time()
    result = train_run(config, runs / f"{model}-{seed}-{len(list(runs.glob('*')))}", overwrite=True)
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", f"modalrec/models/{model}.py"],
                            capture_output=True, text=True).stdout.strip()  # the model file's last change
    row: dict[str, object] = {"model": model, "seed": seed, "epochs": epochs, "sets": sets,
                              "seconds": round(time.time() - start, 1), "epochs_run": result.epochs,
                              "code": commit}
    for task, parts in result.tasks.items():
        for part, metrics in parts.items():
            row[f"{task}/{part}"] = round(metrics["recall@20"], 4)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as file:
        file.write(json.dumps(row) + "\n")
    return row


def render(out: Path) -> str:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    lines = ["| model | code | seed | epochs | settings | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|---|---|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.4f}" if c in row else "-" for c in COLUMNS]
        lines.append(f"| {row['model']} | {row.get('code', '-')} | {row['seed']} | {row['epochs']} | "
                     f"{' '.join(row['sets']) or '-'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(out: Path, pool_splits: bool = False) -> str:
    """Mean and standard deviation over seeds of each (model, code, settings) group; with ``pool_splits`` the
    runs on different ``data.split_seed`` values join one group (seeds are then shown as split:seed), and so do
    their ``model.backbone_run`` values, since each split and seed has its own backbone run."""
    import statistics

    groups: dict[tuple[str, str, str, int], list[dict[str, object]]] = {}
    for line in out.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            kept = [s for s in row["sets"] if not (pool_splits and s.startswith(PER_SPLIT_SETTINGS))]
            key = (row["model"], row.get("code", "-"), " ".join(kept) or "-", row["epochs"])
            groups.setdefault(key, []).append(row)
    runs_counted = any("epochs_run" in row for rows in groups.values() for row in rows)  # newer files only
    extra = ["epochs run"] if runs_counted else []
    lines = ["| model | code | epochs | settings | seeds | " + " | ".join(COLUMNS + extra) + " |",
             "|---|---|---|---|---|" + "---|" * len(COLUMNS + extra)]
    for (model, code, sets, epochs), rows in groups.items():
        cells = []
        for column in COLUMNS:
            values = [float(r[column]) for r in rows if column in r]  # type: ignore[arg-type]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {spread:.4f}" if values else "-")
        if runs_counted:
            counts = [str(r["epochs_run"]) for r in rows if "epochs_run" in r]
            cells.append(", ".join(counts) or "-")
        seeds = ",".join(split_and_seed(r) if pool_splits else str(r["seed"]) for r in rows)
        lines.append(f"| {model} | {code} | {epochs} | {sets} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_and_seed(row: dict[str, object]) -> str:
    splits = [s.split("=", 1)[1] for s in row["sets"] if s.startswith("data.split_seed=")]  # type: ignore[attr-defined]
    return f"{splits[0] if splits else 'default'}:{row['seed']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?")
    parser.add_argument("seed", nargs="?", type=int)
    parser.add_argument("epochs", nargs="?", type=int)
    parser.add_argument("sets", nargs="*", help="KEY=VALUE overrides, as --set takes them")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/cold_quick_runs"))
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--pool-splits", action="store_true", help="with --render: one group over split seeds")
    args = parser.parse_args()
    if args.render:
        print(summary(args.out, args.pool_splits) + "\n\nEvery run:\n\n" + render(args.out))
        return
    if args.model is None or args.seed is None or args.epochs is None:
        parser.error("give MODEL SEED EPOCHS, or --render")
    print(json.dumps(run_one(args.model, args.seed, args.epochs, args.sets, args.out, args.runs)))


if __name__ == "__main__":
    main()
