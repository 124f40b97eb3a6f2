"""Two-process DistributedDataParallel training with gloo, the end-of-job wait and the collective timeout, the
run-folder lock and device errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modalrec.cli.main import main
from modalrec.config import TrainConfig
from modalrec.errors import ConfigError, RunFolderError
from modalrec.train import distributed
from modalrec.train.distributed import DistContext
from modalrec.train.lock import run_folder_lock
from tests.conftest import block_dataset, write_mmrec

SETTINGS = ["--set", "epochs=25", "--set", "progress=false", "--set", "batch_size=32", "--set",
            "learning_rate=0.01", "--set", "patience=0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_gloo_processes_match_a_single_process(tmp_path: Path) -> None:
    rows, features = block_dataset(num_users=60, num_items=30)
    data = write_mmrec(tmp_path / "d", rows, features={"image": features})
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["train", "--data", str(data), "--model", "vbpr", "--out", str(single), *SETTINGS]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), "-m", "modalrec", "train", "--distributed",
               "--data", str(data), "--model", "vbpr", "--out", str(multi), *SETTINGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test: recall@10") == 1  # rank 0 alone reports and writes
    one = json.loads((single / "metrics.json").read_text())["test"]
    two = json.loads((multi / "metrics.json").read_text())["test"]
    assert two["recall@20"] == pytest.approx(one["recall@20"], abs=0.05)
    assert two["ndcg@20"] == pytest.approx(one["ndcg@20"], abs=0.05)
    assert two["recall@20"] > 0.5  # both learned the block structure


def _rank_that_finishes(rank: int, port: int, rank0_delay: float, waits: "torch.multiprocessing.Queue") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed.start(DistContext(rank, 2, rank), torch.device("cpu"), timeout_s=60)
    if rank == 0:
        time.sleep(rank0_delay)  # rank 0 still testing and writing the run folder
    started = time.perf_counter()
    distributed.finish_together()
    waits.put((rank, time.perf_counter() - started))
    distributed.stop()


@pytest.mark.slow
def test_a_rank_that_is_done_waits_for_rank_0_before_leaving_the_group() -> None:
    context = torch.multiprocessing.get_context("spawn")
    waits = context.Queue()
    port = free_port()
    processes = [context.Process(target=_rank_that_finishes, args=(rank, port, 2.0, waits)) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    waited = dict(waits.get(timeout=5) for _ in processes)
    assert waited[1] >= 1.5 > waited[0]


def test_the_collective_timeout_is_the_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    joined = {}
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kwargs: joined.update(kwargs))
    distributed.start(DistContext(0, 2, 0), torch.device("cpu"), timeout_s=7200)
    assert joined["timeout"].total_seconds() == 7200
    with pytest.raises(ConfigError, match="train.distributed_timeout_s"):
        TrainConfig(distributed_timeout_s=0)


def test_distributed_flag_without_torchrun(tiny_mmrec: Path, tmp_path: Path) -> None:
    assert main(["train", "--distributed", "--data", str(tiny_mmrec), "--model", "bpr",
                 "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_cuda_without_a_gpu_is_a_clear_error(tiny_mmrec: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--device", "cuda", "--data", str(tiny_mmrec), "--model", "bpr",
                 "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_run_folder_is_written_by_one_process_at_a_time(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path):
        with pytest.raises(RunFolderError, match=f"is being written by {socket.gethostname()} {os.getpid()}"):
            with run_folder_lock(tmp_path):
                pass
    with run_folder_lock(tmp_path):  # released on exit
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    with run_folder_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().endswith(str(os.getpid()))
