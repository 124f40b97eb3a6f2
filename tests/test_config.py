"""Config files, --set overrides and their errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from modalrec.config import DataConfig, EvalConfig, TrainConfig, apply_overrides, build, field_help
from modalrec.errors import ConfigError, UnknownNameError
from modalrec.train.run import resolve_config


def test_overrides_reach_their_sections(tmp_path: Path) -> None:
    config = resolve_config(
        tmp_path, "lightgcn",
        overrides=["epochs=5", "model.embedding_dim=32", "num_layers=2", "ks=5,10", "rating_threshold=4"],
    )
    assert config.train.epochs == 5
    assert config.model.embedding_dim == 32 and config.model.num_layers == 2
    assert config.eval.ks == (5, 10)
    assert config.data.rating_threshold == 4.0


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('model_name = "bpr"\n[train]\nepochs = 7\n[model]\nreg_weight = 0.5\n')
    config = resolve_config(tmp_path, None, config_file=tmp_path / "c.toml", overrides=["epochs=9"])
    assert config.model_name == "bpr" and config.train.epochs == 9 and config.model.reg_weight == 0.5
    (tmp_path / "c.yaml").write_text("train:\n  learning_rate: 0.01\neval:\n  ks: [1, 2]\n")
    config = resolve_config(tmp_path, "bpr", config_file=tmp_path / "c.yaml")
    assert config.train.learning_rate == 0.01 and config.eval.ks == (1, 2)


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 3\nepohcs = 4\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(tmp_path, "bpr", config_file=path)
    assert str(path) in str(info.value) and "train.epohcs" in str(info.value)


def test_unknown_override_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nonsense'"):
        resolve_config(tmp_path, "bpr", overrides=["nonsense=1"])


def test_ambiguous_bare_key_asks_to_qualify() -> None:
    types = {"train": TrainConfig, "other": TrainConfig}
    with pytest.raises(ConfigError, match="ambiguous; qualify it as one of train.epochs, other.epochs"):
        apply_overrides({}, ["epochs=3"], types)
    assert apply_overrides({}, ["other.epochs=3"], types) == {"other": {"epochs": "3"}}


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (TrainConfig, {"epochs": "many"}, "expected an integer"),
        (TrainConfig, {"epochs": 0}, "must be >= 1"),
        (TrainConfig, {"device": "tpu"}, "expected auto, cpu"),
        (TrainConfig, {"early_stop_metric": "auc"}, "METRIC@K"),
        (TrainConfig, {"progress": "maybe"}, "true or false"),
        (DataConfig, {"split": "sideways"}, "expected one of"),
        (DataConfig, {"split_ratios": [0.5, 0.5, 0.5]}, "must sum to 1"),
        (EvalConfig, {"ks": [0]}, "positive"),
    ],
)
def test_invalid_values(cls: type, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(cls, values)


def test_unknown_model_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        resolve_config(tmp_path, "bpr-mf")
    from modalrec.models import available_models

    assert ", ".join(entry.name for entry in available_models()) in str(info.value)


def test_numbers_in_scientific_notation(tmp_path: Path) -> None:
    config = resolve_config(tmp_path, "bpr", overrides=["learning_rate=1e-2", "reg_weight=1e2", "epochs=1e1"])
    assert config.train.learning_rate == 0.01 and config.model.reg_weight == 100.0 and config.train.epochs == 10


@pytest.mark.parametrize(
    ("value", "bounds", "message"),
    [
        (0, {"low": 1}, "must be >= 1, got 0"),
        (0.0, {"low": 0, "low_open": True}, "must be > 0, got 0.0"),
        (1.0, {"low": 0, "high": 1, "high_open": True}, r"must be in \[0, 1\), got 1.0"),
        (1.5, {"low": 0, "high": 1}, r"must be in \[0, 1\], got 1.5"),
        (3, {"high": 2}, "must be <= 2, got 3"),
    ],
)
def test_check_range_names_the_key_and_the_range(value: float, bounds: dict, message: str) -> None:
    from modalrec.config import check_range

    with pytest.raises(ConfigError, match=r"'model\.x': " + message):
        check_range("model.x", value, **bounds)


def test_check_range_accepts_the_bounds_it_includes() -> None:
    from modalrec.config import check_at_least, check_range

    check_range("model.x", 0, low=0, high=1)
    check_range("model.x", 1, low=0, high=1)
    check_at_least("model", 1, a=1, b=5)
    with pytest.raises(ConfigError, match=r"'model\.b': must be >= 1, got 0"):
        check_at_least("model", 1, a=1, b=0)


def test_model_configs_refuse_out_of_range_values_by_key() -> None:
    from modalrec.models.freedom import FREEDOMConfig
    from modalrec.models.lens import LENSConfig
    from modalrec.models.vbpr import VBPRConfig

    with pytest.raises(ConfigError, match=r"model\.knn_k"):
        FREEDOMConfig(knn_k=0)
    with pytest.raises(ConfigError, match=r"model\.l2_scale.*> 0"):
        LENSConfig(l2_scale=0.0)
    with pytest.raises(ConfigError, match=r"model\.content_dim"):
        VBPRConfig(content_dim=0)


@dataclasses.dataclass(frozen=True)
class _Documented:
    inline: int = 1  # the comment that ends the line
    # a comment line of its own, above the field
    above: float = 0.5
    bare: str = ""
    given: bool = dataclasses.field(default=False, metadata={"help": "from metadata"})  # not this


def test_field_help_reads_metadata_then_the_line_then_the_comment_above() -> None:
    # "bare" must not inherit the trailing comment of the field above it
    assert field_help(_Documented) == {"inline": "the comment that ends the line",
                                       "above": "a comment line of its own, above the field",
                                       "bare": "", "given": "from metadata"}
