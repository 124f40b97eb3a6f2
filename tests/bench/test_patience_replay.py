"""bench/patience_replay.py: early stopping replayed at a shorter patience on a finished run's history."""

from __future__ import annotations

import csv
from pathlib import Path
from types import ModuleType

from modalrec.train.run import resolve_config, train_run
from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(REPO / "bench" / "patience_replay.py", "_bench_patience_replay")


def history(selection: list[float], cold: list[float]) -> list[dict[str, str]]:
    return [{"epoch": str(e), "train_seconds": "0.5", "recall@20": str(s), "cold_recall@20": str(c)}
            for e, (s, c) in enumerate(zip(selection, cold, strict=True))]


def test_the_run_stops_once_the_selection_and_every_task_have_stalled() -> None:
    replay = load().replay
    rows = history([0.1, 0.3, 0.2, 0.2, 0.2, 0.4], [0.5, 0.4, 0.6, 0.6, 0.5, 0.5])
    short = replay(rows, 2)  # the selection stalls after epoch 1, the cold task after epoch 2
    assert (short.epochs, short.train_seconds) == (5, 2.5)
    assert short.chosen == {"selection": (1, 0.3), "cold": (2, 0.6)}
    assert replay(rows, 3).chosen == {"selection": (5, 0.4), "cold": (2, 0.6)}  # never stops: every epoch


def test_the_replay_matches_a_run_trained_at_the_shorter_patience(tiny_mmrec: Path, tmp_path: Path) -> None:
    sets = ["train.epochs=60", "train.progress=false", "train.batch_size=16", "train.learning_rate=0.05",
            "data.split=random", "data.cold_item_fraction=0.25", "model.backbone_run="]
    long = train_run(resolve_config(tiny_mmrec, "aldi", overrides=[*sets, "train.patience=8"], seed=1), tmp_path / "a")
    short = train_run(resolve_config(tiny_mmrec, "aldi", overrides=[*sets, "train.patience=3"], seed=1), tmp_path / "b")
    assert short.epochs < long.epochs  # the shorter patience did stop earlier
    with (tmp_path / "a" / "history.csv").open(newline="") as file:
        replayed = load().replay(list(csv.DictReader(file)), 3)
    assert replayed.epochs == short.epochs
    assert replayed.chosen.pop("selection")[0] == short.best_epoch
    assert {task: epoch for task, (epoch, _) in replayed.chosen.items()} == short.task_best_epochs
