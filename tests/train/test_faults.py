"""Faults: kill -9 and resume, writes cut short, a full disk and a read-only run folder.

The promise under test: a run killed at any moment and resumed with ``modalrec train --resume`` ends with the
metrics an uninterrupted run gets; no artefact is ever left half-written (a reader sees the previous version
or the new one); a write that fails says so in one line and leaves a folder that can be resumed.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modalrec import io_utils
from modalrec.cli.main import main
from modalrec.data.build import ModalitySpec, build_dataset, read_raw_tables, recover_interrupted_swap
from modalrec.errors import RunFolderError, WriteError
from modalrec.features.cache import FeatureCache
from modalrec.io_utils import TEMP_SUFFIX, write_bytes, write_json, write_npy, write_torch, write_with
from modalrec.serve.feedback import FeedbackEvent, FeedbackStore
from modalrec.train import run as run_module
from modalrec.train import trainer as trainer_module
from tests.conftest import write_mmrec

REPO = Path(__file__).resolve().parents[2]
# lr 0.01 and patience 3: BPR stops early at epoch 14 of 40, so early-stopping state crosses the kill
SETTINGS = ["--model", "bpr", "--seed", "11", "--set", "epochs=40", "--set", "batch_size=32",
            "--set", "learning_rate=0.01", "--set", "patience=3", "--set", "threads=1", "--set", "device=cpu",
            "--set", "progress=false"]


def latent_dataset(folder: Path, users: int = 150, items: int = 80, per_user: int = 12, seed: int = 0) -> Path:
    """Users pick items by a hidden 4-factor taste: learnable, but far from perfect recall (unlike blocks)."""
    rng = np.random.default_rng(seed)
    tastes, traits = rng.normal(size=(users, 4)), rng.normal(size=(items, 4))
    rows = []
    for user in range(users):
        logits = 1.5 * traits @ tastes[user]
        chances = np.exp(logits - logits.max())
        chosen = rng.choice(items, size=per_user, replace=False, p=chances / chances.sum())
        labels = [0] * (per_user - 4) + [1, 1, 2, 2]
        rows += [(user, int(item), label) for item, label in zip(chosen, labels)]
    features = np.hstack([traits, rng.normal(size=(items, 4))])
    return write_mmrec(folder, rows, features={"image": features})


def comparable(run: Path) -> dict[str, object]:
    """metrics.json without its wall-clock time, and the per-epoch losses and validation metric."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("train_seconds")
    history = pd.read_csv(run / "history.csv")
    return {"metrics": metrics, "history": history[["epoch", "loss", "recall@20"]].to_dict("list")}


def debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX) or p.name == ".lock")


def cli(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "modalrec", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


# -- kill -9, then train --resume ----------------------------------------------------------------------

@pytest.mark.slow  # about 20 s of CPU: three command-line processes
def test_kill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    data = latent_dataset(tmp_path / "data")
    reference = tmp_path / "reference"
    assert main(["train", "--data", str(data), "--out", str(reference), *SETTINGS]) == 0
    expected = comparable(reference)
    epochs = pd.read_csv(reference / "history.csv")
    fit_seconds = float(epochs["train_seconds"].sum() + epochs["eval_seconds"].sum())
    assert expected["metrics"]["epochs"] < 40  # early stopping ended it  # type: ignore[index]

    seed = int.from_bytes(os.urandom(4), "little")  # the runs above seeded the global generator
    chance = random.Random(seed)
    outcomes = []
    # the first kill lands after the first checkpoint; the second anywhere once the run folder is started
    for number, wait_for in enumerate(("checkpoint.pt", "config.json")):
        out = tmp_path / f"killed{number}"
        process = cli("train", "--data", str(data), "--out", str(out), *SETTINGS)
        while not (out / wait_for).exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            time.sleep(0.005)
        delay = chance.uniform(0.0, 1.5 * fit_seconds)  # the training, and the final writes after it
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        state = {"after": wait_for, "delay": round(delay, 3), "seed": seed, "returncode": process.returncode,
                 "checkpoint_epoch": None, "metrics": (out / "metrics.json").exists()}
        if (out / "checkpoint.pt").exists():  # never torn: it loads
            state["checkpoint_epoch"] = torch.load(out / "checkpoint.pt", weights_only=False)["progress"]["epoch"]
        outcomes.append(state)
        resume = ["train", "--resume", "--out", str(out)]
        if number == 0:
            resumed = cli(*resume)
            assert resumed.wait(timeout=120) == 0, (state, resumed.stderr.read() if resumed.stderr else b"")
        else:
            assert main(resume) == 0, state
        assert comparable(out) == expected, state
        assert debris(out) == [], state
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    print("kill points:", outcomes)


def test_resume_restores_every_random_state(tiny_mmrec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FREEDOM prunes its graph with torch's global generator: resuming must not depend on the process's state."""
    settings = ["--model", "freedom", "--seed", "3", "--set", "epochs=5", "--set", "batch_size=16",
                "--set", "threads=1", "--set", "device=cpu", "--set", "progress=false"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert main(["train", "--data", str(tiny_mmrec), "--out", str(whole), *settings]) == 0
    original = trainer_module.Trainer._run_epoch

    def stop_after_two(self: trainer_module.Trainer) -> dict[str, float]:
        if self.progress.epoch == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", stop_after_two)
    assert main(["train", "--data", str(tiny_mmrec), "--out", str(broken), *settings]) == 130
    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", original)
    torch.manual_seed(12345)  # a new process would start from other random states
    np.random.seed(678)
    random.seed(9)
    assert main(["train", "--resume", "--out", str(broken)]) == 0
    assert comparable(broken) == comparable(whole)


def test_resume_before_the_first_checkpoint_starts_from_scratch(tiny_mmrec: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ["--model", "lightgcn", "--seed", "5", "--set", "epochs=3", "--set", "batch_size=16",
                "--set", "threads=1", "--set", "device=cpu", "--set", "progress=false"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert main(["train", "--data", str(tiny_mmrec), "--out", str(whole), *settings]) == 0

    def killed(self: trainer_module.Trainer) -> dict[str, float]:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", killed)
    assert main(["train", "--data", str(tiny_mmrec), "--out", str(broken), *settings]) == 130
    assert (broken / "config.json").is_file() and not (broken / "checkpoint.pt").exists()
    monkeypatch.undo()
    assert main(["train", "--resume", "--out", str(broken)]) == 0
    assert comparable(broken) == comparable(whole)


def test_resume_refuses_changed_data(tiny_mmrec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out),
                 "--set", "epochs=1", "--set", "progress=false"]) == 0
    features = np.load(tiny_mmrec / "image_feat.npy")
    np.save(tiny_mmrec / "image_feat.npy", features + 1)  # same shape: only the hash can tell
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "image_feat.npy" in error and "changed since the run started" in error


# -- writes cut short ---------------------------------------------------------------------------------

def _half_then_full_disk(handle: object) -> None:
    handle.write(b"half of the new vers")  # type: ignore[attr-defined]
    raise OSError(errno.ENOSPC, "No space left on device")


ARTEFACT_WRITERS = {
    "json": (lambda path, v: write_json(path, {"version": v}), lambda path: json.loads(path.read_text())["version"]),
    "npy": (lambda path, v: write_npy(path, np.full(3, v)), lambda path: int(np.load(path)[0])),
    "torch": (lambda path, v: write_torch(path, {"v": torch.tensor(v)}),
              lambda path: int(torch.load(path, weights_only=True)["v"])),
}


@pytest.mark.parametrize("kind", list(ARTEFACT_WRITERS))
@pytest.mark.parametrize("failure", ["write", "flush", "rename"])
def test_a_failed_write_leaves_the_previous_version(kind: str, failure: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write, read = ARTEFACT_WRITERS[kind]
    path = tmp_path / f"artefact.{kind}"
    write(path, 1)
    full_disk = OSError(errno.ENOSPC, "No space left on device")
    if failure == "write":  # the serializer fails after writing part of the new version
        monkeypatch.setattr("modalrec.io_utils.open", lambda *a, **k: _Failing(open(*a, **k)), raising=False)
    elif failure == "flush":
        monkeypatch.setattr("modalrec.io_utils._fsync", lambda p: (_ for _ in ()).throw(full_disk))
    else:
        monkeypatch.setattr("modalrec.io_utils.os.replace", lambda *a: (_ for _ in ()).throw(full_disk))
    with pytest.raises(WriteError, match="artefact.*No space left on device.*the disk is full"):
        write(path, 2)
    monkeypatch.undo()
    assert read(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


class _Failing:
    """A file whose write crossing 8 bytes fails with ENOSPC after writing part; later (smaller) writes succeed,
    as on a real disk with a little space left."""

    def __init__(self, handle: object) -> None:
        self.handle, self.written, self.failed = handle, 0, False

    def write(self, data: bytes | str) -> int:
        self.written += len(data)
        if self.written > 8 and not self.failed:
            self.failed = True
            self.handle.write(data[:4])  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.handle.write(data))  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.handle, name)

    def __enter__(self) -> _Failing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()  # type: ignore[attr-defined]


def test_write_with_a_failing_writer_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    write_bytes(path, b"old version")
    with pytest.raises(WriteError):
        write_with(path, _half_then_full_disk, "wb")
    assert path.read_bytes() == b"old version" and debris(tmp_path) == []


def test_a_full_disk_hidden_behind_another_error_is_still_a_write_error(tmp_path: Path) -> None:
    """torch.save meets ENOSPC, then fails closing its archive with RuntimeError("unexpected pos ...")."""
    path = tmp_path / "checkpoint.pt"
    write_bytes(path, b"old version")

    def torch_like(handle: object) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 302528 vs 302480")

    with pytest.raises(WriteError, match="checkpoint.pt: cannot write: No space left on device"):
        write_with(path, torch_like, "wb")
    with pytest.raises(RuntimeError, match="a bug"):  # other errors pass through untouched
        write_with(path, lambda handle: (_ for _ in ()).throw(RuntimeError("a bug")), "wb")
    assert path.read_bytes() == b"old version" and debris(tmp_path) == []


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    from modalrec.io_utils import write_bytes
    path, size = sys.argv[1], int(sys.argv[2])
    versions = [bytes([n]) * size for n in range(2)]
    n = 0
    while True:
        write_bytes(path, versions[n % 2])
        n += 1
""")


def test_killing_a_writer_never_leaves_a_torn_file(tmp_path: Path) -> None:
    path, size = tmp_path / "big.bin", 4_000_000
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    chance = random.Random()
    for _ in range(3):
        process = subprocess.Popen([sys.executable, str(script), str(path), str(size)],
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        while not path.exists():
            time.sleep(0.005)
        time.sleep(chance.uniform(0.05, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        content = path.read_bytes()
        assert len(content) == size and content in (bytes([0]) * size, bytes([1]) * size)
        leftovers = [p for p in tmp_path.iterdir() if p.name not in ("big.bin", "writer.py")]
        assert all(p.name.startswith(".big.bin.") and p.name.endswith(TEMP_SUFFIX) for p in leftovers)


def test_feature_cache_never_returns_a_torn_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path, "tfidf", "abc")
    cache.put("ab12", np.arange(4, dtype=np.float32))

    def half_saved(handle: object, array: np.ndarray) -> None:
        handle.write(b"\x93NUMPY")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("modalrec.io_utils.np.save", half_saved)
    with pytest.raises(WriteError):
        cache.put("ab12", np.ones(4))
    with pytest.raises(WriteError):
        cache.put("cd34", np.ones(4))
    monkeypatch.undo()
    np.testing.assert_array_equal(cache.get("ab12"), np.arange(4))  # type: ignore[arg-type]
    assert cache.get("cd34") is None
    (cache.folder / "ef" / "ef56.npy").parent.mkdir()
    (cache.folder / "ef" / "ef56.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr'")  # torn by an old version
    assert cache.get("ef56") is None  # recomputed, not trusted


# -- the dataset builder --------------------------------------------------------------------------------

def _raw_shop(folder: Path, titles: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame({"item_id": [f"i{n}" for n in range(len(titles))], "title": list(titles)})
    items.to_csv(folder / "items.csv", index=False)
    interactions = pd.DataFrame({"user_id": [f"u{n % 3}" for n in range(9)],
                                 "item_id": [f"i{n % len(titles)}" for n in range(9)]})
    interactions.to_csv(folder / "interactions.csv", index=False)
    return folder


def _full_disk_when_replacing(monkeypatch: pytest.MonkeyPatch, name_suffix: str) -> None:
    """The atomic writers' final rename fails with ENOSPC for targets ending in ``name_suffix``."""
    real_replace = os.replace

    def replace(source: object, target: object) -> None:
        if str(target).endswith(name_suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr("modalrec.io_utils.os.replace", replace)


def _build(raw: Path, out: Path) -> None:
    tables = read_raw_tables(raw / "interactions.csv", raw / "items.csv")
    build_dataset(tables, [ModalitySpec("text", ("title",), "tfidf")], out)


def test_a_failed_dataset_build_keeps_the_earlier_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "built"
    _build(_raw_shop(tmp_path / "raw", ("red shoe", "blue shoe", "green hat", "red hat")), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _raw_shop(tmp_path / "raw", ("red boot", "blue boot", "green cap", "red cap"))
    _full_disk_when_replacing(monkeypatch, "manifest.json")
    with pytest.raises(WriteError, match="manifest.json"):
        _build(tmp_path / "raw", out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "raw"]  # no staging folder left


def test_a_build_killed_between_its_two_renames_is_recovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "built"
    raw = _raw_shop(tmp_path / "raw", ("red shoe", "blue shoe", "green hat", "red hat"))
    _build(raw, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = os.replace

    def killed_before_the_new_build_moves_in(source: object, target: object) -> None:
        if Path(str(source)).name.endswith(".building"):
            raise KeyboardInterrupt  # kill -9 right after the earlier build was renamed aside
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr("modalrec.data.build.os.replace", killed_before_the_new_build_moves_in)
    with pytest.raises(KeyboardInterrupt):
        _build(raw, out)
    monkeypatch.undo()
    assert not out.exists() and len(list(tmp_path.glob(".built.*.old"))) == 1
    recover_interrupted_swap(out)  # the next build starts with this
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".built.*.old"))


# -- the feedback database (a SQLite transaction per batch) ----------------------------------------------

FEEDBACK_SCRIPT = textwrap.dedent("""
    import sys, time
    from modalrec.serve.feedback import FeedbackEvent, FeedbackStore
    store = FeedbackStore(sys.argv[1])
    batch = [FeedbackEvent(f"u{n}", f"i{n}", "click", time.time(), "A") for n in range(50)]
    while True:
        store.append(batch)
""")


def test_feedback_batches_are_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    with FeedbackStore(path) as store:
        store.append([FeedbackEvent("u1", "i1", "click", 1.0, "A")])
        missing_user = FeedbackEvent(None, "i3", "click", 3.0, "B")  # type: ignore[arg-type]
        bad_batch = [FeedbackEvent("u2", "i2", "click", 2.0, "A"), missing_user]
        with pytest.raises(sqlite3.IntegrityError):
            store.append(bad_batch)
        assert store.count() == 1  # the good first half of the failed batch was rolled back
        store.append([FeedbackEvent("u4", "i4", "click", 4.0, "B")])  # and the store still works
        assert store.count() == 2

    script = tmp_path / "writer.py"
    script.write_text(FEEDBACK_SCRIPT)
    killed = tmp_path / "killed.sqlite"
    process = subprocess.Popen([sys.executable, str(script), str(killed)], env={**os.environ, "PYTHONPATH": str(REPO)})
    time.sleep(1.5 + random.uniform(0, 0.5))
    process.send_signal(signal.SIGKILL)
    process.wait()
    connection = sqlite3.connect(killed)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    connection.close()
    assert count > 0 and count % 50 == 0  # whole batches only


# -- a full disk or a read-only run folder ----------------------------------------------------------------

def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--model", "bpr", "--seed", "2",
                 "--set", "epochs=4", "--set", "batch_size=16", "--set", "progress=false", "--set", "threads=1",
                 *extra])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: "), lines
    return lines[0]


def test_full_disk_during_training_keeps_a_resumable_run(tiny_mmrec: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert _train(tiny_mmrec, whole) == 0
    real_fsync = io_utils._fsync
    checkpoints = {"n": 0}

    def disk_fills_at_third_checkpoint(path: Path) -> None:
        if path.name.startswith(".checkpoint.pt."):
            checkpoints["n"] += 1
            if checkpoints["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr("modalrec.io_utils._fsync", disk_fills_at_third_checkpoint)
    capsys.readouterr()
    assert _train(tiny_mmrec, out) == 2
    line = _one_error_line(capsys)
    assert "checkpoint.pt: cannot write: No space left on device" in line and "--resume" in line
    assert torch.load(out / "checkpoint.pt", weights_only=False)["progress"]["epoch"] == 2  # the earlier one
    assert not (out / "metrics.json").exists() and debris(out) == []
    monkeypatch.undo()  # space freed
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert comparable(out) == comparable(whole)


def test_full_disk_while_starting_leaves_no_run(tiny_mmrec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _full_disk_when_replacing(monkeypatch, "split.npz")
    assert _train(tiny_mmrec, out) == 2
    assert "split.npz: cannot write" in _one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == []  # not a half-written run folder
    monkeypatch.undo()
    assert _train(tiny_mmrec, out) == 0  # and nothing blocks the next attempt


def test_read_only_run_folder_fails_before_any_work(tiny_mmrec: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read before the folder was checked")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(run_module, "prepare_data", never)
    code = _train(tiny_mmrec, tmp_path / "run")
    monkeypatch.undo()
    assert code == 2
    line = _one_error_line(capsys)
    assert "cannot write the run folder" in line and "Read-only file system" in line
    assert not (tmp_path / "run").exists()


def test_resume_in_a_read_only_folder_fails_before_any_work(tiny_mmrec: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _train(tiny_mmrec, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read before the folder was checked")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(run_module, "_reload_data", never)
    code = main(["train", "--resume", "--out", str(out)])
    monkeypatch.undo()
    assert code == 2 and "Read-only file system" in _one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions (root ignores them)")
def test_unwritable_run_folder_by_permissions(tiny_mmrec: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert _train(tiny_mmrec, out) == 2
        assert "cannot write the run folder" in _one_error_line(capsys)
    finally:
        out.chmod(0o755)


def test_lock_on_an_unwritable_folder_is_a_run_folder_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalrec.train.lock import run_folder_lock

    def read_only(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("modalrec.io_utils.os.open", read_only)  # os.open itself: undone at once
    with pytest.raises(RunFolderError, match="cannot write the run folder: Read-only file system"):
        with run_folder_lock(tmp_path):
            pass
    monkeypatch.undo()
    assert not (tmp_path / ".lock").exists()


def test_debris_from_a_killed_write_is_cleared_on_resume(tiny_mmrec: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(tiny_mmrec, out) == 0
    leftover = out / f".checkpoint.pt.k3x9{TEMP_SUFFIX}"
    leftover.write_bytes(b"half a checkpoint")
    (out / "metrics.json").unlink()
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert not leftover.exists() and (out / "metrics.json").is_file()
