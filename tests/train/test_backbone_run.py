"""``model.backbone_run``: a cold-start model refines the vectors of a finished warm run, trained on the same split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modalrec.errors import ConfigError
from modalrec.train.run import load_run, resolve_config, train_run

FAST = ["train.epochs=3", "train.progress=false", "train.batch_size=16", "data.split=random",
        "data.cold_item_fraction=0.25"]


def run(data: Path, model: str, out: Path, *sets: str) -> Path:
    train_run(resolve_config(data, model, overrides=[*FAST, *sets], seed=1), out)
    return out


def test_the_backbone_run_is_frozen_in_the_cold_start_model_and_reloaded(tiny_mmrec: Path, tmp_path: Path) -> None:
    warm = run(tiny_mmrec, "bpr", tmp_path / "bpr")
    cold = run(tiny_mmrec, "gar", tmp_path / "gar", f"model.backbone_run={warm}")
    backbone = load_run(warm).model.embeddings()
    refined = load_run(cold).model
    users, items = refined.backbone.vectors()  # type: ignore[union-attr, operator]
    warm_items = refined.backbone.warm.squeeze(1).bool()  # type: ignore[union-attr]
    assert torch.equal(users, backbone.users)
    assert torch.equal(items[warm_items], backbone.items[warm_items])
    assert (items[~warm_items] == 0).all() and (~warm_items).any()


def test_a_backbone_trained_on_another_split_is_refused(tiny_mmrec: Path, tmp_path: Path) -> None:
    warm = run(tiny_mmrec, "bpr", tmp_path / "bpr", "data.split_seed=7")
    with pytest.raises(ConfigError, match="other training interactions"):
        run(tiny_mmrec, "gar", tmp_path / "gar", f"model.backbone_run={warm}")


def test_a_backbone_without_vectors_is_refused(tiny_mmrec: Path, tmp_path: Path) -> None:
    warm = run(tiny_mmrec, "mmdfm", tmp_path / "mmdfm", "model.rerank_with_deep=true")
    with pytest.raises(ConfigError, match="does not factor"):
        run(tiny_mmrec, "aldi", tmp_path / "aldi", f"model.backbone_run={warm}")
