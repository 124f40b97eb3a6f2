"""The CLI explains itself: an example on every subcommand, help on every option, every config key listed,
one device syntax, model names in any case with a suggestion for typos."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys

import pytest

from modalrec.cli.config_cmd import config_keys
from modalrec.cli.examples import EXAMPLES, subcommands
from modalrec.cli.main import build_parser, main
from modalrec.config import DataConfig, EvalConfig, TrainConfig
from modalrec.errors import UnknownNameError
from modalrec.models import available_models, get_model

COMMANDS = subcommands(build_parser())


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_every_subcommand_shows_an_example(path: str) -> None:
    command = dict(COMMANDS)[path]
    assert command.epilog and command.epilog.startswith("example"), f"`modalrec {path}` has no example"
    assert "modalrec " + (path + " " if path else "") in command.format_help()


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_every_option_has_help(path: str) -> None:
    command = dict(COMMANDS)[path]
    missing = [action.option_strings or [action.dest] for action in command._actions
               if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert not missing, f"`modalrec {path}`: options without help: {missing}"


@pytest.mark.parametrize("line", [line for text in EXAMPLES.values() for line in text.replace("\\\n", " ").splitlines()])
def test_examples_are_valid_command_lines(line: str) -> None:
    words = shlex.split(line.split("|")[0])
    assert words[0] == "modalrec"
    build_parser().parse_args(words[1:])  # exits (SystemExit) on an unknown option or a missing argument


def test_config_keys_lists_every_field_with_type_default_and_help() -> None:
    keys = config_keys()
    listed = {(key.section, key.name) for key in keys}
    for section, cls in (("data", DataConfig), ("train", TrainConfig), ("eval", EvalConfig)):
        assert {(section, f.name) for f in dataclasses.fields(cls)} <= listed
    for entry in available_models():
        assert {(f"model: {entry.name}", f.name) for f in dataclasses.fields(entry.config_class)} <= listed
    assert all(key.type for key in keys)
    assert [key for key in keys if not key.help] == []


def test_config_keys_for_one_model_shows_its_train_defaults(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "keys", "--model", "FREEDOM"]) == 0
    out = capsys.readouterr().out
    assert "[model]" in out and "knn_k" in out and "[train]" in out
    epochs = next(line for line in out.splitlines() if line.split()[:1] == ["epochs"])
    assert epochs.split()[1:3] == ["int", "300"]


def test_train_device_accepts_the_config_syntax() -> None:
    args = build_parser().parse_args(["train", "--data", "d", "--model", "bpr", "--out", "o", "--device", "cuda:0"])
    assert args.device == "cuda:0"


def test_bad_device_is_refused_with_the_syntax(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--run", "r", "--device", "gpu"])
    assert "expected auto (a GPU when present), cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err


def test_model_names_are_case_insensitive() -> None:
    assert get_model("FREEDOM").name == "freedom"
    assert get_model(" LightGCN ").name == "lightgcn"


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'freedm'; did you mean 'freedom'\\? choose one of"):
        get_model("freedm")
    with pytest.raises(UnknownNameError) as caught:
        get_model("zzzz")
    assert caught.value.suggestion is None and "did you mean" not in str(caught.value)


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """`modalrec models | head -1`: no BrokenPipeError traceback, the status cat gives (141)."""
    read, write = os.pipe()
    os.close(read)
    with open(write, "w", buffering=1) as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["models"]) == 141
