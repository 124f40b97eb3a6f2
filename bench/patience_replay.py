"""Replay early stopping at a shorter patience on finished runs, without training again.

    python bench/patience_replay.py RUN_DIR [RUN_DIR ...] [--patience 20 10 5]

Training is deterministic up to the epoch a run stops at, so a run with patience P would have trained the
same epochs as a finished run with a longer patience, up to its own stop. Its choices therefore follow from
the finished run's ``history.csv``: the Trainer's rule (stop once the selection metric and every reported
task have gone ``P`` validations without a strict improvement), each task's chosen epoch the best one before
that stop. Where a task's chosen epoch is unchanged, so are its test metrics. Prints, for each run and
patience, the epochs trained, the training seconds to the stop, and each task's chosen epoch with its
validation value. Assumes validation every epoch (``train.eval_every=1``, the default).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import NamedTuple


class Replay(NamedTuple):
    epochs: int  # epochs trained before the stop
    train_seconds: float  # their training seconds
    chosen: dict[str, tuple[int, float]]  # task -> (chosen epoch, its validation value)


def replay(history: list[dict[str, str]], patience: int, metric: str = "recall@20") -> Replay:
    """The Trainer's early stop on ``history`` (rows of ``history.csv``) at ``patience``, on the run's
    ``train.early_stop_metric``."""
    tasks = ["", *(key[: -len(metric) - 1] for key in history[0] if key.endswith(f"_{metric}"))]
    best = {task: (-float("inf"), -1, 0) for task in tasks}  # value, epoch, validations since
    seconds = 0.0
    for row in history:
        epoch, seconds = int(row["epoch"]), seconds + float(row["train_seconds"])
        for task, (value, chosen, stalled) in best.items():
            current = float(row[f"{task}_{metric}" if task else metric])
            best[task] = (current, epoch, 0) if current > value else (value, chosen, stalled + 1)
        if all(stalled >= patience for _, _, stalled in best.values()):
            break
    chosen_epochs = {task or "selection": (chosen, value) for task, (value, chosen, _) in best.items()}
    return Replay(epoch + 1, seconds, chosen_epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--patience", nargs="+", type=int, default=[20, 10])
    parser.add_argument("--metric", default="recall@20", help="the runs' train.early_stop_metric")
    args = parser.parse_args()
    print(f"| run | patience | epochs | train s | chosen epoch: validation {args.metric} |\n|---|---|---|---|---|")
    for run in args.runs:
        with (run / "history.csv").open(newline="") as file:
            history = list(csv.DictReader(file))
        for patience in args.patience:
            result = replay(history, patience, args.metric)
            chosen = ", ".join(f"{task} {epoch}: {value:.4f}" for task, (epoch, value) in result.chosen.items())
            print(f"| {run} | {patience} | {result.epochs} | {result.train_seconds:.1f} | {chosen} |")


if __name__ == "__main__":
    main()
