"""The run manifest (data hashes, versions, git, machine) and ``modalrec runs compare``."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import modalrec
from modalrec.cli.main import main
from modalrec.cli.runs_cmd import flatten
from modalrec.train.manifest import git_state

FAST = ["--set", "epochs=2", "--set", "batch_size=16", "--set", "progress=false", "--set", "threads=1",
        "--set", "device=cpu"]


def train(data: Path, out: Path, *extra: str) -> None:
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(out), *FAST, *extra]) == 0


@pytest.fixture()
def run(tiny_mmrec: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    train(tiny_mmrec, out, "--seed", "7", "--set", "data.split_seed=99")
    return out


def test_manifest_records_config_data_split_versions_and_machine(run: Path, tiny_mmrec: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == []
    started, finished = (datetime.datetime.fromisoformat(manifest[k]) for k in ("started", "finished"))
    assert started <= finished and started.tzinfo is not None
    assert manifest["config"] == json.loads((run / "config.json").read_text())
    assert manifest["seed"] == 7 and manifest["split"]["split_seed"] == 99

    files = {entry["name"]: entry for entry in manifest["data"]["files"]}
    assert set(files) == {"tiny.inter", "image_feat.npy", "text_feat.npy"}
    for name, entry in files.items():
        content = (tiny_mmrec / name).read_bytes()
        assert entry["bytes"] == len(content) and entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert manifest["split"] | {"sha256": ""} == {"method": "given", "split_seed": 99, "train": 48, "valid": 24,
                                                  "test": 24, "sha256": ""}

    versions = manifest["versions"]
    for package in ("torch", "numpy", "scipy", "pandas", "scikit-learn"):
        assert versions[package] == importlib.metadata.version(package)
    assert versions["modalrec"] == modalrec.__version__ and versions["python"].count(".") == 2
    environment = manifest["environment"]
    assert environment["device"] == "cpu" and environment["threads"] == 1 and environment["world_size"] == 1
    assert environment["platform"] and isinstance(environment["cpus"], int)
    assert "git" in manifest and "command" in manifest


def test_the_split_hash_tells_splits_apart(tiny_mmrec: Path, tmp_path: Path) -> None:
    for name, method in (("a", "given"), ("b", "random"), ("c", "random")):
        train(tiny_mmrec, tmp_path / name, "--set", f"data.split={method}")
    hashes = [json.loads((tmp_path / n / "manifest.json").read_text())["split"]["sha256"] for n in "abc"]
    assert hashes[0] != hashes[1] and hashes[1] == hashes[2]


def test_git_commit_of_a_checkout(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    source = tmp_path / "checkout"
    source.mkdir()
    (source / "__init__.py").write_text("")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "__init__.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    commit = git("rev-parse", "HEAD").strip()
    assert git_state(source) == {"commit": commit, "dirty": False}
    (source / "__init__.py").write_text("x = 1\n")
    assert git_state(source) == {"commit": commit, "dirty": True}


def test_git_state_is_none_without_a_checkout_or_without_git(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path / "site-packages" / "modalrec"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert git_state(installed) is None
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no git at all
    assert git_state(Path(modalrec.__file__).parent) is None


def test_resume_is_recorded_in_the_manifest(run: Path) -> None:
    (run / "metrics.json").unlink()
    assert main(["train", "--resume", "--out", str(run)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1
    assert "versions" not in manifest["resumed"][0]  # nothing changed between the start and the resume


def test_a_run_from_before_manifests_gets_one_on_resume(run: Path) -> None:
    (run / "manifest.json").unlink()
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert json.loads((run / "manifest.json").read_text())["data"]["files"]


# -- runs compare ------------------------------------------------------------------------------------

def test_runs_compare_shows_what_differs(tiny_mmrec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_mmrec, first, "--seed", "1")
    np.save(tiny_mmrec / "text_feat.npy", np.load(tiny_mmrec / "text_feat.npy") * 2)
    train(tiny_mmrec, second, "--seed", "2", "--set", "model.embedding_dim=8")
    capsys.readouterr()
    assert main(["runs", "compare", str(first), str(second)]) == 0
    report = capsys.readouterr().out
    config_part = report[report.index("config:"):report.index("data:")]
    assert "config: 2 of" in config_part
    assert [line.split() for line in config_part.splitlines()[2:4]] == [["model.embedding_dim", "64", "8"],
                                                                      ["seed", "1", "2"]]
    data_part = report[report.index("data:"):report.index("split:")]
    assert "data: 1 of 3 differ" in data_part and "text_feat.npy" in data_part
    assert "versions: same" in report and "split: same" in report
    metrics = {json.loads((run / "metrics.json").read_text())["test"]["recall@20"] for run in (first, second)}
    row = next(line for line in report.splitlines() if line.strip().startswith("test recall@20"))
    assert {float(value) for value in row.split()[2:4]} == {round(v, 6) for v in metrics}


def test_runs_compare_of_identical_runs(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    capsys.readouterr()
    assert main(["runs", "compare", str(run), str(twin)]) == 0
    report = capsys.readouterr().out
    assert "config: same" in report and "data: same" in report and "metrics: identical" in report


def test_runs_compare_errors(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["runs", "compare", str(run), str(empty)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["runs", "compare", str(run), str(tmp_path / "absent")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (run / "manifest.json").write_text("{not json")
    assert main(["runs", "compare", str(run), str(run)]) == 2
    assert "manifest.json: cannot be read as JSON" in capsys.readouterr().err


def test_runs_compare_without_manifest_or_metrics(run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "manifest.json").unlink()
    (old / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["runs", "compare", str(run), str(old)]) == 0
    report = capsys.readouterr().out
    assert "run B has none" in report and "B has no metrics.json" in report and "config: same" in report


def test_flatten_nests_with_dots() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [2, 3]}}, "e": None}) == {"a.b": 1, "a.c.d": [2, 3], "e": None}


def test_manifest_device_on_cuda(tiny_mmrec: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out), "--device", "cuda",
                 "--set", "epochs=1", "--set", "progress=false"]) == 0
    environment = json.loads((out / "manifest.json").read_text())["environment"]
    assert environment["device"].startswith("cuda") and environment["device_name"]
