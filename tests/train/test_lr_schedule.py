"""train.lr_schedule: the cosine and plateau schedules set Adam's step size as documented, resume at the same
step size, and the constant schedule (the default) leaves it alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from modalrec.config import EvalConfig, TrainConfig, build
from modalrec.errors import ConfigError
from modalrec.train.trainer import Trainer, cosine_learning_rate
from tests.models.test_model_contract import BLOCK, build as build_model


def trainer(monkeypatch: pytest.MonkeyPatch | None = None, checkpoint_dir: Path | None = None,
            **settings: object) -> Trainer:
    config = TrainConfig(**{"batch_size": 32, "learning_rate": 0.01, "patience": 0, "progress": False,
                            "early_stop_metric": f"recall@{BLOCK}", **settings})  # type: ignore[arg-type]
    model, split = build_model("bpr", seed=0)
    made = Trainer(model, split, config, EvalConfig(ks=(BLOCK,)), seed=0, checkpoint_dir=checkpoint_dir)
    if monkeypatch is not None:  # validation never improves after the first epoch: every evaluation stalls
        monkeypatch.setattr(made, "_validate", lambda record, epoch: 0.5)
    return made


def learning_rates(trained: Trainer) -> list[float]:
    return [record["learning_rate"] for record in trained.progress.history]


def test_cosine_runs_from_the_learning_rate_down_to_the_floor() -> None:
    config = TrainConfig(epochs=11, learning_rate=0.01, lr_schedule="cosine", lr_floor=0.1)
    rates = [cosine_learning_rate(config, epoch) for epoch in range(11)]
    assert rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)
    assert rates[5] == pytest.approx(0.0055)  # half way: the mean of the two ends
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_training_under_cosine_uses_and_records_each_epochs_step_size() -> None:
    trained = trainer(epochs=5, lr_schedule="cosine", lr_floor=0.0)
    trained.fit()
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(5)]
    assert learning_rates(trained) == pytest.approx(expected)
    assert trained.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_plateau_cuts_after_each_lr_patience_stalled_evaluations_down_to_the_floor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    trained = trainer(monkeypatch, epochs=8, lr_schedule="plateau", lr_patience=2, lr_decay=0.5, lr_floor=0.3)
    trained.fit()
    # epoch 0 sets the best; epochs 1, 2, ... stall; cuts after the 2nd, 4th, 6th stall, never below 0.003
    assert learning_rates(trained) == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.003, 0.003, 0.003])


def test_plateau_counts_only_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    trained = trainer(monkeypatch, epochs=8, eval_every=2, lr_schedule="plateau", lr_patience=2, lr_decay=0.5,
                      lr_floor=0.0)
    trained.fit()
    # evaluations end epochs 1, 3, 5, 7: the first sets the best, the 3rd (epoch 5) is the 2nd stall
    assert learning_rates(trained) == pytest.approx([0.01] * 6 + [0.005] * 2)


def test_a_resumed_plateau_run_continues_at_the_same_step_sizes(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    settings = {"epochs": 8, "lr_schedule": "plateau", "lr_patience": 2, "lr_decay": 0.5, "lr_floor": 0.0}
    whole = trainer(monkeypatch, **settings)  # type: ignore[arg-type]
    whole.fit()

    interrupted = trainer(monkeypatch, tmp_path, **settings)  # type: ignore[arg-type]

    def stop_after_epoch_4(record: dict[str, float]) -> None:
        if record["epoch"] == 4:
            raise KeyboardInterrupt

    interrupted.on_epoch_end = stop_after_epoch_4
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = trainer(monkeypatch, tmp_path, **settings)  # type: ignore[arg-type]
    resumed.fit(resume=True)
    assert learning_rates(resumed) == learning_rates(whole)
    assert [r["loss"] for r in resumed.progress.history] == [r["loss"] for r in whole.progress.history]


def test_the_constant_schedule_keeps_the_step_size_and_records_none() -> None:
    trained = trainer(epochs=3)
    trained.fit()
    assert trained.optimizer.param_groups[0]["lr"] == 0.01
    assert all("learning_rate" not in record for record in trained.progress.history)


@pytest.mark.parametrize(("key", "value"), [("lr_schedule", "linear"), ("lr_floor", 1.5), ("lr_decay", 1.0),
                                            ("lr_decay", 0.0), ("lr_patience", 0)])
def test_bad_schedule_settings_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"train.{key}"):
        build(TrainConfig, {key: value}, section="train")
