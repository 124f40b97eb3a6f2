"""Same data, config and seed on CPU give bit-identical metrics, losses and weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modalrec.cli.main import main
from modalrec.config import TrainConfig
from modalrec.train.trainer import make_adam

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "epochs=3", "--set", "batch_size=16", "--set", "progress=false", "--set", "device=cpu"]


def train(data: Path, out: Path, model: str, seed: int, *extra: str) -> None:
    assert main(["train", "--data", str(data), "--model", model, "--out", str(out), "--seed", str(seed),
                 *FAST, *extra]) == 0


def record(run: Path) -> dict[str, object]:
    """Everything a run reports except wall-clock times: metrics.json, per-epoch losses, per-user test metrics."""
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["train_seconds"]
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    kept = [i for i, column in enumerate(history[0]) if not column.endswith("seconds")]
    with np.load(run / "test_per_user.npz") as per_user:
        arrays = {name: per_user[name].tolist() for name in per_user.files}
    return {"metrics": metrics, "history": [[row[i] for i in kept] for row in history], "per_user": arrays}


def same_weights(first: Path, second: Path) -> bool:
    a, b = (torch.load(run / "best.pt", weights_only=True)["state"] for run in (first, second))
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# bpr: plain; freedom: draws its pruned graph from torch's global generator; bm3: dropout views
@pytest.mark.parametrize("model", ["bpr", "freedom", "bm3"])
def test_two_runs_with_one_seed_are_bit_identical(model: str, tiny_mmrec: Path, tmp_path: Path) -> None:
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    train(tiny_mmrec, first, model, 3, "--set", "threads=1")
    np.random.seed(99)  # state a run must not depend on
    torch.manual_seed(99)
    train(tiny_mmrec, second, model, 3, "--set", "threads=1")
    assert record(first) == record(second)
    assert same_weights(first, second)
    train(tiny_mmrec, other, model, 4, "--set", "threads=1")  # the comparison can tell runs apart
    assert record(other)["history"] != record(first)["history"]


def test_two_threads_are_reproducible_too(tiny_mmrec: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        for name in ("first", "second"):
            train(tiny_mmrec, tmp_path / name, "lightgcn", 5, "--set", "threads=2")
    finally:
        torch.set_num_threads(threads)
    assert record(tmp_path / "first") == record(tmp_path / "second")
    manifest = json.loads((tmp_path / "first" / "manifest.json").read_text())
    assert manifest["environment"]["threads"] == 2


def test_a_fresh_process_gets_the_same_numbers(tiny_mmrec: Path, tmp_path: Path) -> None:
    train(tiny_mmrec, tmp_path / "here", "bm3", 6, "--set", "threads=1")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "123"}
    done = subprocess.run([sys.executable, "-m", "modalrec", "train", "--data", str(tiny_mmrec), "--model", "bm3",
                           "--out", str(tmp_path / "there"), "--seed", "6", *FAST, "--set", "threads=1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert record(tmp_path / "here") == record(tmp_path / "there")
    assert same_weights(tmp_path / "here", tmp_path / "there")


def adam_after_steps(config: TrainConfig | None, steps: int = 20) -> torch.Tensor:
    """A (50, 8) parameter after ``steps`` Adam steps on seeded gradients; None: torch's own default Adam."""
    parameter = torch.nn.Parameter(torch.ones(50, 8))
    optimizer = torch.optim.Adam([parameter], lr=0.01) if config is None else make_adam([parameter], config)
    gradients = torch.Generator().manual_seed(0)
    for _ in range(steps):
        parameter.grad = torch.randn(parameter.shape, generator=gradients)
        optimizer.step()
    return parameter.detach()


def test_the_trainers_adam_equals_torchs_default_bit_for_bit_and_fused_up_to_rounding() -> None:
    default = adam_after_steps(None)
    assert torch.equal(adam_after_steps(TrainConfig(learning_rate=0.01)), default)
    fused = adam_after_steps(TrainConfig(learning_rate=0.01, fused_optimizer=True))
    assert torch.allclose(fused, default, atol=1e-6)
    assert not torch.equal(default, torch.ones(50, 8))  # the steps moved the parameter
