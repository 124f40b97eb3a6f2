"""bench/cold_quick.py: the summary of quick cold-start checks, pooled over re-splits."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(REPO / "bench" / "cold_quick.py", "_bench_cold_quick")


def row(split: int, seed: int, cold_valid: float, **extra: object) -> dict[str, object]:
    return {"model": "dropoutnet", "seed": seed, "epochs": 300, "code": "abc1234",
            "sets": [f"data.split_seed={split}", f"model.backbone_run=/runs/bb{split}/bpr-seed{seed}",
                     "train.learning_rate=0.003"],
            "cold/valid": cold_valid, **extra}


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pooled_splits_and_backbones_form_one_group_with_the_epochs_each_run_trained(tmp_path: Path) -> None:
    out = write(tmp_path / "grid.jsonl", [row(7, 1, 0.4, epochs_run=41), row(8, 2, 0.5, epochs_run=75)])
    lines = load().summary(out, pool_splits=True).splitlines()
    assert lines[0].endswith("| overall/test | epochs run |")
    assert len(lines) == 3  # header, rule, one group: the split seed and the backbone run are pooled
    cells = [c.strip() for c in lines[2].split("|")]
    assert cells[4:7] == ["train.learning_rate=0.003", "7:1,8:2", "0.4500 ± 0.0707"]
    assert cells[-2] == "41, 75"


def test_without_pooling_each_split_is_its_own_group_and_older_files_keep_their_columns(tmp_path: Path) -> None:
    out = write(tmp_path / "old.jsonl", [row(7, 1, 0.4), row(8, 2, 0.5)])
    lines = load().summary(out).splitlines()
    assert lines[0].endswith("| overall/test |")  # no run recorded its epochs: no such column
    assert len(lines) == 4
