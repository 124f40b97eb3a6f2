"""Resume and run-folder tampering (issue 17): a crafted ``checkpoint.pt`` runs no code, a checkpoint without
its keys is a one-line error, settings changed on ``--resume`` are applied and recorded (safe ones) or refused
naming the key, and a hand-edited ``config.json`` is refused rather than used silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modalrec.cli.main import main

SETTINGS = ["--model", "bpr", "--seed", "3", "--set", "epochs=3", "--set", "batch_size=16", "--set", "threads=1",
            "--set", "device=cpu", "--set", "progress=false"]


class CodeOnLoad:
    """Unpickling this calls ``exec``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: "), lines
    return lines[0]


@pytest.fixture()
def run(tiny_mmrec: Path, tmp_path: Path) -> Path:
    """A run stopped after its second of three epochs: resumable, with a checkpoint."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mmrec), "--out", str(out), *SETTINGS]) == 0
    (out / "metrics.json").unlink()
    return out


def test_a_checkpoint_carrying_code_is_refused_and_runs_nothing(run: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    torch.save({"format": 2, "model": CodeOnLoad(marker)}, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run)]) == 2
    line = one_error_line(capsys)
    assert not marker.exists()
    assert "checkpoint.pt: refused" in line and "could run code" in line and "exec" in line


def test_every_checkpoint_reader_refuses_code(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    best = torch.load(run / "best.pt", weights_only=True)
    assert main(["train", "--resume", "--out", str(run)]) == 0  # complete again
    torch.save({**best, "extra": CodeOnLoad(marker)}, run / "best.pt")
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run)]) == 2
    assert main(["recommend", "--run", str(run), "--user", "0"]) == 2
    assert not marker.exists()


def test_a_checkpoint_without_its_keys_is_one_clear_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"format": 2, "optimizer": {}}, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run)]) == 2
    line = one_error_line(capsys)
    assert "not a complete checkpoint (missing model, best_model, generator, torch_rng, progress)" in line


def test_a_checkpoint_of_another_model_is_one_clear_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    checkpoint["model"] = {"user_embedding.weight": torch.zeros(2, 2)}
    checkpoint["progress"]["unknown"] = 1
    torch.save(checkpoint, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run)]) == 2
    assert "checkpoint.pt: does not fit this run" in one_error_line(capsys)


def test_a_checkpoint_written_by_training_resumes_under_the_safe_loader(run: Path) -> None:
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


# -- settings changed on --resume -------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "named"), [
    (["--set", "learning_rate=0.01"], "config key 'train.learning_rate': cannot change on --resume"),
    (["--set", "model.embedding_dim=8"], "config key 'model.embedding_dim': cannot change on --resume"),
    (["--set", "data.split_seed=7"], "config key 'data.split_seed': cannot change on --resume"),
    (["--set", "eval.ks=5,20"], "config key 'eval.ks': cannot change on --resume"),
    (["--model", "lightgcn"], "config key '--model': cannot change on --resume"),
    (["--seed", "4"], "config key '--seed': cannot change on --resume"),
    (["--data", "{other}"], "config key '--data': cannot change on --resume"),
    (["--config", "{config}"], "config key 'train.batch_size': cannot change on --resume"),
])
def test_resume_refuses_a_changed_setting_naming_it(run: Path, tmp_path: Path, extra: list[str], named: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text("[train]\nbatch_size = 64\n")
    extra = [arg.format(other=tmp_path, config=config_file) for arg in extra]
    before = {name: (run / name).read_bytes() for name in ("config.json", "manifest.json", "checkpoint.pt")}
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), *extra]) == 2
    line = one_error_line(capsys)
    assert named in line and "train.epochs" in line  # and what may change instead
    assert {name: (run / name).read_bytes() for name in before} == before


def test_resume_applies_and_records_a_safe_change(run: Path, tiny_mmrec: Path) -> None:
    assert main(["train", "--resume", "--out", str(run), "--set", "epochs=5", "--set", "train.patience=9",
                 "--data", str(tiny_mmrec), "--model", "bpr", "--seed", "3"]) == 0  # the same data, model, seed
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 5
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["resumed"][-1]["changed"] == {"train.epochs": {"from": 3, "to": 5},
                                                  "train.patience": {"from": 20, "to": 9}}
    config = json.loads((run / "config.json").read_text())
    assert config == manifest["config"] and config["train"]["epochs"] == 5
    assert main(["evaluate", "--run", str(run)]) == 0


def test_a_hand_edited_config_is_refused_naming_the_file(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads((run / "config.json").read_text())
    config["train"]["learning_rate"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run)]) == 2
    line = one_error_line(capsys)
    assert "config.json: edited after the run started" in line
    assert "train.learning_rate: 0.5 in config.json, 0.001 in manifest.json" in line
    assert main(["evaluate", "--run", str(run)]) == 2  # nor used to evaluate


def test_a_resume_killed_between_manifest_and_config_is_completed(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["train"]["epochs"] = 4
    manifest["resumed"] = [{"at": "now", "changed": {"train.epochs": {"from": 3, "to": 4}}}]
    (run / "manifest.json").write_text(json.dumps(manifest))  # config.json still says 3
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 4
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4
