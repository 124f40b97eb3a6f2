"""Malformed configuration files and ``--set`` overrides: each raises ConfigError naming the key and the file
(and the line, for a file that cannot be parsed); unusual but valid files are read as meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from modalrec.config import DataConfig, EvalConfig, TrainConfig, apply_overrides, build
from modalrec.errors import ConfigError
from modalrec.train.run import resolve_config


def resolve(tmp_path: Path, name: str, content: str | bytes, overrides: tuple[str, ...] = ()) -> object:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return resolve_config(tmp_path, "bpr", config_file=path, overrides=list(overrides))


# (file name, content, the key the error names, words in the message, the line named, if any)
MALFORMED = [
    pytest.param("c.toml", "[train]\nepochz = 5\n", "train.epochz", "unknown key; expected one of", None,
                 id="unknown-key"),
    pytest.param("c.toml", "[trian]\nepochs = 5\n", "trian", "unknown top-level key", None, id="unknown-section"),
    pytest.param("c.toml", "[train]\nepochs = 'ten'\n", "train.epochs", "expected an integer, found 'ten'", None,
                 id="string-for-integer"),
    pytest.param("c.toml", "[train]\nepochs = 2.5\n", "train.epochs", "expected an integer, found 2.5", None,
                 id="fraction-for-integer"),
    pytest.param("c.toml", "[train]\nepochs = 1e400\n", "train.epochs", "expected an integer, found inf", None,
                 id="integer-overflowing-to-inf"),
    pytest.param("c.toml", "[train]\nepochs = -1\n", "train.epochs", "must be >= 1, got -1", None,
                 id="negative-epochs"),
    pytest.param("c.toml", "[train]\nlearning_rate = nan\n", "train.learning_rate", "expected a finite number", None,
                 id="nan-learning-rate"),
    pytest.param("c.toml", "[train]\nlearning_rate = inf\n", "train.learning_rate", "expected a finite number", None,
                 id="inf-learning-rate"),
    pytest.param("c.toml", "[data]\nrating_threshold = nan\n", "data.rating_threshold", "finite number", None,
                 id="nan-threshold"),
    pytest.param("c.toml", "[data]\nsplit_ratios = [0.5, 0.5]\n", "data.split_ratios",
                 "expected tuple[float, float, float]", None, id="two-split-ratios"),
    pytest.param("c.toml", "[data]\nsplit_ratios = [0.5, 0.4, 0.4]\n", "data.split_ratios", "must sum to 1", None,
                 id="split-ratios-sum"),
    pytest.param("c.toml", "[data]\nsplit_ratios = [nan, 0.5, 0.5]\n", "data.split_ratios", "found [nan, 0.5, 0.5]",
                 None, id="nan-split-ratio"),
    pytest.param("c.toml", "[data]\nsplit_seed = -1\n", "data.split_seed", "must be >= 0", None, id="negative-seed"),
    pytest.param("c.toml", "[data]\ncold_item_fraction = 1.5\n", "data.cold_item_fraction", "fraction in [0, 1)",
                 None, id="fraction-above-one"),
    pytest.param("c.toml", "[data]\nfeatures = 5\n", "data.features", "expected dict[str, str], found 5", None,
                 id="features-not-a-table"),
    pytest.param("c.toml", "[train]\ndevice = 'gpu'\n", "train.device", "expected auto, cpu, cuda or cuda:N", None,
                 id="unknown-device"),
    pytest.param("c.toml", "[train]\nearly_stop_metric = 'recall@x'\n", "train.early_stop_metric", "METRIC@K", None,
                 id="bad-metric-name"),
    pytest.param("c.toml", "[eval]\nks = [0]\n", "eval.ks", "positive cut-offs", None, id="zero-cut-off"),
    pytest.param("c.toml", "[train]\nprogress = 'maybe'\n", "train.progress", "expected true or false", None,
                 id="string-for-bool"),
    pytest.param("c.toml", "[model]\nfoo = 1\n", "model.foo", "unknown key; expected one of: embedding_dim", None,
                 id="unknown-model-key"),
    pytest.param("c.toml", "model_name = 5\n", "model_name", "expected a model name (a string), found 5", None,
                 id="model-name-not-text"),
    pytest.param("c.toml", "[train]\nepochs = = 5\n", "--config", "not valid TOML", 2, id="toml-syntax"),
    pytest.param("c.toml", b"[train]\nepochs = 5\x00\n", "--config", "not valid TOML", 2, id="toml-nul-byte"),
    pytest.param("c.toml", "# caf\xe9\n\n[train]\nepochs = 5 # \xe9\n".encode("latin-1"), "--config",
                 "not UTF-8 text (byte 0xe9)", 1, id="latin1-file"),
    pytest.param("c.toml", "[train]\nepochs = 5\n".encode("utf-16"), "--config", "the file is UTF-16", 1,
                 id="utf16-file"),
    pytest.param("c.yaml", "train: 5\n", "train", "expected a section of key = value settings, found 5", None,
                 id="yaml-section-not-mapping"),
    pytest.param("c.yaml", "- a\n- b\n", "--config", "expected a mapping of sections, found a list", None,
                 id="yaml-list"),
    pytest.param("c.yaml", "train: {epochs: 5\n", "--config", "not valid YAML", 1, id="yaml-syntax"),
    pytest.param("c.yaml", "train:\n  epochs: 5\n  epochs: 7\n", "--config", "key 'epochs' appears twice", 3,
                 id="yaml-duplicate-key"),
    pytest.param("c.yaml", "train:\n  epochs: yes\n", "train.epochs", "expected an integer, found True", None,
                 id="yaml-bool-for-integer"),
    pytest.param("c.json", "{}", "--config", "expected a .toml, .yaml or .yml file", None, id="json-file"),
]


@pytest.mark.parametrize(("name", "content", "key", "words", "line"), MALFORMED)
def test_malformed_config_names_key_file_and_line(tmp_path: Path, name: str, content: str | bytes, key: str,
                                                  words: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, name, content)
    message = str(info.value)
    assert type(info.value) is ConfigError
    assert info.value.key == key and words in message and name in message, message
    assert "\n" not in message
    if line is not None:
        assert f"line {line}" in message or f"{name}:{line}:" in message, message


@pytest.mark.parametrize(("overrides", "key", "words"), [
    pytest.param(["epochs"], "epochs", "expected --set key=value", id="set-without-equals"),
    pytest.param(["nonsense=1"], "nonsense", "unknown key in every section", id="set-unknown-key"),
    pytest.param(["epochs=1e400"], "train.epochs", "expected an integer", id="set-overflowing-integer"),
    pytest.param(["learning_rate=nan"], "train.learning_rate", "finite number", id="set-nan"),
    pytest.param(["data.split_ratios=0.5,0.5"], "data.split_ratios", "found '0.5,0.5'", id="set-two-ratios"),
    pytest.param(["data.features.image"], "data.features.image", "expected --set key=value", id="set-nested-no-value"),
])
def test_malformed_overrides_name_the_key(tmp_path: Path, overrides: list[str], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(tmp_path, "bpr", overrides=overrides)
    assert type(info.value) is ConfigError and info.value.key == key and words in str(info.value), str(info.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found: .*nowhere.toml"):
        resolve_config(tmp_path, "bpr", config_file=tmp_path / "nowhere.toml")


def test_the_config_catalogue_is_large_enough() -> None:
    assert len(MALFORMED) >= 30


# --- valid but unusual ----------------------------------------------------------------------------------------


def test_a_utf8_bom_and_comments_are_fine(tmp_path: Path) -> None:
    config = resolve(tmp_path, "c.toml", "\ufeff# é\n[train]\nepochs = 7 # ü\n".encode())
    assert config.train.epochs == 7  # type: ignore[attr-defined]


def test_an_empty_yaml_file_means_the_defaults(tmp_path: Path) -> None:
    config = resolve(tmp_path, "c.yml", "")
    assert config.data == DataConfig() and config.eval == EvalConfig()  # type: ignore[attr-defined]


def test_whole_floats_and_numeric_strings_coerce_exactly() -> None:
    train = build(TrainConfig, {"epochs": 5.0, "batch_size": "64", "learning_rate": "1e-3"}, section="train")
    assert (train.epochs, train.batch_size, train.learning_rate) == (5, 64, 0.001)
    merged = apply_overrides({}, ["ks=5,10"], {"eval": EvalConfig})
    assert build(EvalConfig, merged["eval"], section="eval").ks == (5, 10)


# --- issue 17: a setting the data's format or split would silently ignore is refused ------------------------------


def _mmrec(folder: Path) -> Path:
    folder.mkdir()
    (folder / "d.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t1\t0\n1\t0\t2\n")
    return folder


def _movielens(folder: Path) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t100\n2\t2\t4\t101\n1\t2\t3\t102\n")
    genres = "|".join(["0"] * 19)
    (folder / "u.item").write_text(f"1|Toy Story (1995)|01-Jan-1995||http://x|{genres}\n"
                                   f"2|Heat (1995)|01-Jan-1995||http://x|{genres}\n")
    return folder


@pytest.mark.parametrize(("make", "content", "key", "words"), [
    pytest.param(_mmrec, "[data]\nsplit_ratios = [0.6, 0.2, 0.2]\n", "data.split_ratios",
                 "the split is 'given' (the data's x_label column), which ignores it", id="ratios-with-a-given-split"),
    pytest.param(_mmrec, "[data]\nfeatures = {image = 'extra.npy'}\n", "data.features",
                 "applies to the table format only", id="table-features-for-mmrec"),
    pytest.param(_movielens, "[data]\nuser_col = 'uid'\n", "data.user_col", "is read as movielens, which ignores it",
                 id="table-column-for-movielens"),
])
def test_a_setting_the_data_would_ignore_is_refused(tmp_path: Path, make: object, content: str, key: str,
                                                     words: str) -> None:
    from modalrec.data.prepare import prepare_data

    data = make(tmp_path / "data")  # type: ignore[operator]
    config = resolve(tmp_path, "c.toml", content)
    with pytest.raises(ConfigError) as info:
        prepare_data(data, config.data)  # type: ignore[attr-defined]
    assert info.value.key == key and words in str(info.value) and "\n" not in str(info.value), str(info.value)
