"""Per-model training defaults: used when the user sets nothing, overridden by a config file or --set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from modalrec.config import TrainConfig
from modalrec.models.registry import ModelEntry, available_models, get_model
from modalrec.train.run import RunConfig, resolve_config

TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


def models_with_training_defaults() -> list[ModelEntry]:
    return [entry for entry in available_models() if entry.defaults_for()]


def test_train_section_puts_the_users_choices_over_the_models_defaults() -> None:
    entry = dataclasses.replace(get_model("bpr"), training_defaults={"learning_rate": 0.002, "patience": 30})
    assert entry.train_section({}) == {"learning_rate": 0.002, "patience": 30}
    assert entry.train_section({"patience": "5", "epochs": 3}) == {"learning_rate": 0.002, "patience": "5", "epochs": 3}


@pytest.mark.parametrize("entry", available_models(), ids=lambda e: e.name)
def test_every_training_default_is_a_valid_train_setting(entry: ModelEntry) -> None:
    assert set(entry.defaults_for()) <= TRAIN_KEYS
    resolve_config("data", entry.name)  # builds TrainConfig from them without a ConfigError


def test_smore_trains_with_its_own_defaults_unless_the_user_sets_them(tmp_path: Path) -> None:
    entry = get_model("smore")
    assert entry in models_with_training_defaults()
    plain = resolve_config("data", "smore").train
    for key, value in entry.training_defaults.items():
        assert getattr(plain, key) == value != getattr(TrainConfig(), key)
    key = next(iter(entry.training_defaults))
    chosen = 7 if isinstance(getattr(plain, key), int) else 0.0042
    assert getattr(resolve_config("data", "smore", overrides=[f"{key}={chosen}"]).train, key) == chosen
    config_file = tmp_path / "run.toml"
    config_file.write_text(f"[train]\n{key} = {chosen}\n", encoding="utf-8")
    assert getattr(resolve_config("data", "smore", config_file=config_file).train, key) == chosen


def test_training_defaults_are_recorded_in_the_resolved_config_and_read_back() -> None:
    config = resolve_config("data", "smore", seed=3)
    recorded = config.to_dict()["train"]
    for key, value in get_model("smore").defaults_for().items():
        assert recorded[key] == value
    assert RunConfig.from_dict(config.to_dict()) == config


def test_a_model_without_training_defaults_keeps_the_trainer_defaults() -> None:
    assert not get_model("bpr").defaults_for()
    assert resolve_config("data", "bpr").train == TrainConfig()


def test_mmdfm_chooses_its_learning_rate_by_fusion_mode() -> None:
    early = resolve_config("data", "mmdfm", overrides=["model.fusion=early"])
    late = resolve_config("data", "mmdfm", overrides=["model.fusion=late"])
    hybrid = resolve_config("data", "mmdfm", overrides=["model.fusion=hybrid"])
    assert early.train.learning_rate == hybrid.train.learning_rate == 5e-4
    assert late.train.learning_rate == TrainConfig().learning_rate
    assert resolve_config("data", "mmdfm").train.learning_rate == 5e-4  # early is the default mode
    chosen = resolve_config("data", "mmdfm", overrides=["model.fusion=early", "train.learning_rate=0.003"])
    assert chosen.train.learning_rate == 0.003
    assert RunConfig.from_dict(early.to_dict()) == early


@pytest.mark.parametrize(("model", "batch_size"),
                         [("clcrec", 4096), ("dropoutnet", 4096), ("gar", 4096), ("aldi", 2048)])
def test_a_refiner_of_a_finished_backbone_run_trains_with_coldrecs_patience(model: str, batch_size: int) -> None:
    assert resolve_config("data", model).train == TrainConfig()  # training its own backbone: BPR's budget
    refining = resolve_config("data", model, overrides=["model.backbone_run=runs/bpr"]).train
    assert (refining.batch_size, refining.patience) == (batch_size, 10)
    chosen = resolve_config("data", model, overrides=["model.backbone_run=runs/bpr", "train.patience=20"]).train
    assert (chosen.batch_size, chosen.patience) == (batch_size, 20)


def test_freedom_steps_at_0_002_and_waits_longer_from_its_svd_start_only() -> None:
    default = resolve_config("data", "freedom").train  # the random start is the default
    assert default == dataclasses.replace(TrainConfig(), learning_rate=0.002)
    from_svd = resolve_config("data", "freedom", overrides=["model.id_init=svd"])
    assert (from_svd.train.patience, from_svd.train.learning_rate) == (50, 0.002)
    assert resolve_config("data", "freedom", overrides=["train.learning_rate=0.001"]).train == TrainConfig()
    assert RunConfig.from_dict(from_svd.to_dict()) == from_svd
    chosen = resolve_config("data", "freedom", overrides=["model.id_init=svd", "train.patience=30"])
    assert chosen.train.patience == 30
