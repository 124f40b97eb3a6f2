"""Per-modality explanations: ablation drops for content models, errors for ID-only ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modalrec.cli.main import main
from modalrec.errors import ModalrecError
from modalrec.serve.explain import explain_user
from modalrec.train.run import load_run
from tests.conftest import block_dataset, write_mmrec

FAST = ["--set", "epochs=5", "--set", "progress=false", "--set", "batch_size=16"]


@pytest.fixture()
def vbpr_run(tmp_path: Path) -> Path:
    rows, informative = block_dataset()
    constant = np.ones((informative.shape[0], 3), dtype=np.float32)  # the same text vector for every item
    data = write_mmrec(tmp_path / "d", rows, features={"image": informative, "text": constant})
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "vbpr", "--out", str(out), *FAST]) == 0
    return out


def test_ablation_drop_is_zero_for_a_modality_that_carries_nothing(vbpr_run: Path) -> None:
    rows = explain_user(load_run(vbpr_run), "0", k=4)
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    assert all(r.method == "ablation" and set(r.contributions) == {"image", "text"} for r in rows)
    assert all(r.contributions["text"] == 0.0 for r in rows)  # replacing a constant by its mean changes nothing
    assert any(abs(r.contributions["image"]) > 1e-6 for r in rows)


def test_explain_command_prints_a_table(vbpr_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", "--run", str(vbpr_run), "--user", "1", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "score drop" in lines[0] and lines[1].split()[-2:] == ["image", "text"]
    assert len(lines) == 5


def test_an_unknown_user_gets_an_explain_error_not_a_recommend_one(vbpr_run: Path) -> None:
    with pytest.raises(ModalrecError, match="^explain: unknown user id 'NOBODY' \\(not in the dataset\\)"):
        explain_user(load_run(vbpr_run), "NOBODY")


def test_id_only_model_has_nothing_to_explain(tiny_mmrec: Path, tmp_path: Path) -> None:
    out = tmp_path / "bpr"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out), *FAST]) == 0
    with pytest.raises(ModalrecError, match="bpr reads no item content"):
        explain_user(load_run(out), "0")
