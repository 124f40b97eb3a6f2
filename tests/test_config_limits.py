"""Hostile configuration files: alias bombs, deep nesting and huge files are refused quickly, and no error
message grows with the value it quotes (issue 17: a 449-byte YAML took 70 s and 3.85 GB, a 347-byte one
printed an 11.5 MB error)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modalrec.cli.main import main
from modalrec.config import MAX_CONFIG_BYTES, DataConfig, TrainConfig, build, read_config_file
from modalrec.errors import ConfigError, DataFormatError, quoted, shorten


def alias_bomb(levels: int, width: int, size: int) -> str:
    """``train.epochs`` as a list whose anchors each repeat the previous one ``width`` times: ``width ** levels``
    values once expanded, padded with a comment to exactly ``size`` bytes."""
    names = "abcdefghijklmnop"
    parts = ["&a [" + ",".join(["lol"] * width) + "]"]
    parts += [f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * width) + "]" for i in range(1, levels)]
    text = "train:\n  epochs: [" + ", ".join(parts) + "]\n"
    padding = size - len(text) - 2
    assert padding >= 0
    return text + "#" + "x" * padding + "\n"


@pytest.mark.parametrize(("levels", "size"), [(8, 449), (6, 347), (12, 600)])
def test_an_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path: Path, levels: int, size: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels, 9, size))
    assert path.stat().st_size == size
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases") as caught:
        read_config_file(path)
    assert time.perf_counter() - start < 1.0
    assert len(str(caught.value)) < 500 and "\n" not in str(caught.value)


def test_the_cli_prints_one_short_line_for_a_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(6, 9, 347))
    start = time.perf_counter()
    assert main(["data", "info", str(tmp_path), "--config", str(path)]) == 2
    assert time.perf_counter() - start < 1.0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 500 and "aliases" in lines[0]


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("eval:\n  ks: &cuts [10, 20]\ntrain:\n  epochs: &n 3\n  patience: *n\n")
    sections = read_config_file(path)
    assert build(TrainConfig, sections["train"], section="train") == TrainConfig(epochs=3, patience=3)


def test_deep_nesting_is_refused_without_a_traceback(tmp_path: Path) -> None:
    yaml_path, toml_path = tmp_path / "deep.yaml", tmp_path / "deep.toml"
    yaml_path.write_text("train:\n  epochs: " + "[" * 5000 + "]" * 5000 + "\n")
    toml_path.write_text("[train]\nepochs = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than"):
        read_config_file(yaml_path)
    with pytest.raises(ConfigError, match="deep|not valid TOML"):
        read_config_file(toml_path)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("[train]\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="at most"):
        read_config_file(path)


def test_a_bomb_in_a_set_override_stays_a_string_with_a_short_message() -> None:
    bomb = alias_bomb(8, 9, 449).split("epochs: ", 1)[1].split("\n", 1)[0]
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="train.epochs") as caught:
        build(TrainConfig, {"epochs": bomb}, section="train")
    assert time.perf_counter() - start < 1.0 and len(str(caught.value)) < 500


def test_huge_quoted_values_are_cut_in_every_error() -> None:
    huge = "v" * 1_000_000
    assert len(str(ConfigError("k" * 10_000, f"found {huge}", file="f" * 10_000))) < 600
    assert len(str(DataFormatError("p" * 10_000, f"expected a number, found {huge}", line=3, field="c"))) < 600
    with pytest.raises(ConfigError) as caught:
        build(DataConfig, {"features": [huge] * 1000}, section="data")
    assert len(str(caught.value)) < 500


def test_quoted_values_keep_small_values_whole_and_cut_big_ones() -> None:
    assert quoted([0.5, float("nan")]) == "[0.5, nan]"
    assert quoted("ten") == "'ten'"
    nested: list[object] = ["lol"] * 9
    for _ in range(30):  # 9 ** 30 values if it were expanded
        nested = [nested] * 9
    assert len(quoted(nested)) <= 80
    assert shorten("x" * 1000, 100).startswith("xxx") and len(shorten("x" * 1000, 100)) <= 100
