"""`explain` works for every registered model that reads item content, graph models included."""

from __future__ import annotations

from pathlib import Path

import pytest

from modalrec.cli.main import main
from modalrec.models import available_models
from modalrec.serve.explain import explain_user
from modalrec.train.run import load_run

CONTENT_MODELS = [entry.name for entry in available_models() if entry.uses_content]
QUICK = ["--set", "epochs=1", "--set", "progress=false", "--set", "batch_size=64"]


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_every_content_model_explains(name: str, tiny_mmrec: Path, tmp_path: Path) -> None:
    out = tmp_path / name
    small_graph = ["--set", "model.knn_k=3"] if _has_knn(name) else []  # the tiny catalogue has 12 items
    assert main(["train", "--data", str(tiny_mmrec), "--model", name, "--out", str(out), *QUICK, *small_graph]) == 0
    rows = explain_user(load_run(out), "0", k=3)
    assert [row.rank for row in rows] == [1, 2, 3]
    for row in rows:
        assert row.contributions and all(value == value for value in row.contributions.values())  # no NaN
        if row.method == "ablation":
            assert set(row.contributions) <= {"image", "text"}


def test_graph_model_ablation_moves_scores(tiny_mmrec: Path, tmp_path: Path) -> None:
    """FREEDOM reads content only through its item-item graph; ablating a modality must change scores."""
    out = tmp_path / "freedom"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "freedom", "--out", str(out), *QUICK,
                 "--set", "model.knn_k=3"]) == 0
    rows = explain_user(load_run(out), "0", k=3)
    assert any(abs(value) > 1e-6 for row in rows for value in row.contributions.values())


def _has_knn(name: str) -> bool:
    from modalrec.models.registry import get_model

    return "knn_k" in get_model(name).config_class.__dataclass_fields__
