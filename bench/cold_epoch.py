"""Seconds per training epoch of one model under the item cold-start protocol, optionally with a profile.

    python bench/cold_epoch.py MODEL EPOCHS [--backbone-run DIR] [--profile] [KEY=VALUE ...]

Trains MODEL on ml100k-posters with 20% cold items (``data.cold_item_fraction=0.2``, split seed 2024, model
seed 1) for EPOCHS epochs with no early stop, on one thread, and prints each epoch's training seconds and
validation recall@20 from the run's ``history.csv``; ``--backbone-run`` freezes a finished warm run as the
backbone of the cold-start models that refine one. ``--profile`` wraps the run in ``torch.profiler`` and
prints the operators by their own CPU time (the profiler slows the run; read shares, not seconds).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch

DATA = "../shared/datasets/ml100k-posters/mmrec"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("epochs", type=int)
    parser.add_argument("sets", nargs="*", help="more KEY=VALUE settings")
    parser.add_argument("--backbone-run", default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from modalrec.train.run import resolve_config, train_run

    torch.set_num_threads(1)
    sets = [f"train.epochs={args.epochs}", "train.progress=false", "train.patience=0", "train.threads=1",
            "data.cold_item_fraction=0.2", *args.sets]
    if args.backbone_run:
        sets.append(f"model.backbone_run={args.backbone_run}")
    config = resolve_config(DATA, args.model, overrides=sets, seed=1)
    with tempfile.TemporaryDirectory(prefix="cold-epoch-") as folder:
        run = Path(folder) / args.model
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                train_run(config, run)
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        else:
            train_run(config, run)
        for row in csv.DictReader((run / "history.csv").open()):
            print(f"epoch {row['epoch']}: train {float(row['train_seconds']):.3f} s, "
                  f"valid recall@20 {float(row['recall@20']):.4f}, loss {float(row['loss']):.5f}")


if __name__ == "__main__":
    main()
