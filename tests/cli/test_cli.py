"""The command line end to end on a tiny dataset, and its one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modalrec.cli.main import main
from modalrec.models import available_models
from modalrec.train import trainer as trainer_module
from tests.conftest import write_mmrec

FAST = ["--set", "epochs=3", "--set", "progress=false", "--set", "batch_size=16"]


def train(data: Path, out: Path, model: str = "vbpr", *extra: str) -> int:
    return main(["train", "--data", str(data), "--model", model, "--out", str(out), *FAST, *extra])


def test_train_writes_a_complete_run_folder(tiny_mmrec: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert train(tiny_mmrec, out) == 0
    for name in ("metrics.json", "config.json", "user_ids.csv", "item_ids.csv", "best.pt", "checkpoint.pt",
                 "history.csv", "training.png", "split.npz"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test", "best_epoch", "epochs", "train_seconds", "test_buckets"}
    assert metrics["epochs"] == 3 and 0 <= metrics["best_epoch"] < 3
    expected = {f"{m}@{k}" for m in ("recall", "precision", "ndcg", "hit", "map", "mrr") for k in (10, 20, 50)}
    assert set(metrics["test"]) == expected
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "history.csv").read_text().splitlines()) == 4
    assert "test: recall@10" in capsys.readouterr().out


def test_evaluate_reproduces_metrics(tiny_mmrec: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    train(tiny_mmrec, out, "lightgcn")
    capsys.readouterr()
    for split in ("test", "valid"):
        assert main(["evaluate", "--run", str(out), "--split", split, "--json"]) == 0
        captured = capsys.readouterr()
        recorded = json.loads((out / "metrics.json").read_text())[split]
        assert json.loads(captured.out) == pytest.approx(recorded, abs=1e-12)
        assert "matches metrics.json" in captured.err


def test_recommend_uses_original_ids_and_skips_training_items(tmp_path: Path) -> None:
    rows = [(0, 0, 0), (0, 1, 0), (0, 2, 2), (1, 1, 0), (1, 3, 0), (1, 0, 2), (2, 2, 0), (2, 3, 0), (2, 1, 1)]
    data = write_mmrec(tmp_path / "d", rows, features={"image": np.eye(4)})
    (data / "u_id_mapping.csv").write_text("user_id\tuserID\nann\t0\nbob\t1\ncyd\t2\n")
    (data / "i_id_mapping.csv").write_text("item_id\titemID\nA\t0\nB\t1\nC\t2\nD\t3\n")
    out = tmp_path / "run"
    assert train(data, out, "bpr") == 0
    csv_path = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(out), "--all-users", "-k", "3", "--out", str(csv_path)]) == 0
    with open(csv_path) as handle:
        recs = list(csv.DictReader(handle))
    assert list(recs[0]) == ["user_id", "rank", "item_id", "score", "source"]
    assert {rec["source"] for rec in recs} == {"model"}
    seen = {"ann": {"A", "B"}, "bob": {"B", "D"}, "cyd": {"C", "D"}}
    by_user: dict[str, list[str]] = {}
    for rec in recs:
        by_user.setdefault(rec["user_id"], []).append(rec["item_id"])
    assert set(by_user) == {"ann", "bob", "cyd"}
    for user, items in by_user.items():
        assert len(items) == 2 and not set(items) & seen[user]  # 4 items - 2 seen = 2 left
    assert main(["recommend", "--run", str(out), "--user", "bob", "-k", "1", "--out", str(csv_path)]) == 0
    assert csv_path.read_text().splitlines()[1].startswith("bob,1,")


def test_resume_finishes_like_an_uninterrupted_run(tiny_mmrec: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ["--set", "epochs=6", "--set", "progress=false", "--set", "batch_size=16", "--seed", "5"]
    whole = tmp_path / "whole"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "lightgcn", "--out", str(whole), *settings]) == 0

    original = trainer_module.Trainer._run_epoch
    calls = {"n": 0}

    def crash_after_three(self: trainer_module.Trainer) -> dict[str, float]:
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", crash_after_three)
    broken = tmp_path / "broken"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "lightgcn", "--out", str(broken), *settings]) == 130
    assert not (broken / "metrics.json").exists()
    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", original)
    assert main(["train", "--resume", "--out", str(broken)]) == 0
    first = json.loads((whole / "metrics.json").read_text())
    second = json.loads((broken / "metrics.json").read_text())
    assert second["test"] == first["test"] and second["epochs"] == 6


# -- bad input: one line naming the problem, exit code 2, no traceback, no run folder ------------------

def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modalrec", *args], capture_output=True, text=True, cwd=cwd)


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


BAD_CASES = {
    "missing file": ("", ["not found"]),
    "too few columns": ("userID\titemID\tx_label\n0\t1\t0\n1\t2\n", ["d.inter:3", "expected 3 columns, found 2"]),
    "non-numeric id": ("userID\titemID\n0\t1\nx\t2\n", ["d.inter:3", "column 'userID'", "'x'"]),
    "bad x_label": ("userID\titemID\tx_label\n0\t1\t0\n0\t2\t7\n", ["d.inter:3", "column 'x_label'"]),
    "empty file": ("\n", ["d.inter", "empty"]),
    "no training data": ("userID\titemID\tx_label\n0\t1\t2\n0\t2\t1\n", ["leaves no training interactions"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_data_gives_one_clear_line(case: str, tmp_path: Path) -> None:
    content, fragments = BAD_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    if case != "missing file":
        (data / "d.inter").write_text(content)
    path = data if case != "missing file" else tmp_path / "absent"
    out = tmp_path / "run"
    result = run_cli("train", "--data", str(path), "--model", "bpr", "--out", str(out))
    assert_clean_error(result, *fragments)
    assert not out.exists()


def test_bad_feature_files(tiny_mmrec: Path, tmp_path: Path) -> None:
    np.save(tiny_mmrec / "image_feat.npy", np.ones((5, 3), dtype=np.float32))
    out = tmp_path / "run"
    assert_clean_error(run_cli("train", "--data", str(tiny_mmrec), "--model", "vbpr", "--out", str(out)),
                       "image_feat.npy has 5")
    bad = np.ones((12, 3), dtype=np.float32)
    bad[4, 1] = np.nan
    np.save(tiny_mmrec / "image_feat.npy", bad)
    assert_clean_error(run_cli("train", "--data", str(tiny_mmrec), "--model", "vbpr", "--out", str(out)),
                       "image_feat.npy", "row 4, column 1", "finite")
    assert not out.exists()


def test_unknown_model_config_key_and_resume(tiny_mmrec: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert_clean_error(run_cli("train", "--data", str(tiny_mmrec), "--model", "bprr", "--out", str(out)),
                       "unknown model 'bprr'", "choose one of: ", ", ".join(e.name for e in available_models()))
    assert_clean_error(run_cli("train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out),
                               "--set", "epoch=3"), "'epoch'")
    config = tmp_path / "c.toml"
    config.write_text("[model]\nembeding_dim = 8\n")
    assert_clean_error(run_cli("train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out),
                               "--config", str(config)), "c.toml", "model.embeding_dim")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_cli("train", "--resume", "--out", str(empty)), "holds no run")
    assert not out.exists()


def test_existing_run_is_not_overwritten(tiny_mmrec: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(tiny_mmrec, out, "bpr") == 0
    before = (out / "metrics.json").read_bytes()
    assert train(tiny_mmrec, out, "bpr") == 2
    assert (out / "metrics.json").read_bytes() == before


def test_data_info(tiny_mmrec: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", str(tiny_mmrec)]) == 0
    text = capsys.readouterr().out
    assert "users         24" in text and "items         12" in text
    assert "train 48  valid 24  test 24" in text
    assert "image" in text and "missing content for 0 items" in text


def test_models_lists_each_model(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [entry.name for entry in available_models()] and {"bpr", "lightgcn", "vbpr"} <= set(names)


def test_evaluate_cold_items(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # item 3 never appears in training: it is cold, and only VBPR's content path can rank it
    rows = [(0, 0, 0), (0, 1, 0), (0, 3, 2), (1, 1, 0), (1, 2, 0), (1, 3, 2), (2, 0, 0), (2, 2, 0), (2, 1, 2)]
    data = write_mmrec(tmp_path / "d", rows, features={"image": np.eye(4)})
    out = tmp_path / "run"
    assert train(data, out, "vbpr") == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--cold-items", "--json"]) == 0
    captured = capsys.readouterr().out
    metrics = json.loads(captured)
    assert metrics["hit@10"] == 1.0  # only 2 unseen items remain per user, the cold one among them
    assert main(["evaluate", "--run", str(out), "--cold-items", "--split", "valid"]) == 2
