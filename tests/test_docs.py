"""The README and the docs say what the code does: quickstarts from tested files, tables from the registry."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from modalrec.cli.main import build_parser
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250


def _generator() -> ModuleType:
    return load_script(ROOT / "docs" / "gen_reference.py", "gen_reference")


def code_blocks(text: str, language: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```", text, re.M | re.S)]


def command_lines(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


def test_readme_quickstarts_are_the_tested_example_files() -> None:
    text = README.read_text()
    assert (ROOT / "examples" / "quickstart.py").read_text() in code_blocks(text, "python")
    assert (ROOT / "examples" / "quickstart.sh").read_text() in code_blocks(text, "bash")


def test_readme_model_table_matches_the_registry() -> None:
    generator = _generator()
    assert generator.readme_model_table() in README.read_text(), "run: python docs/gen_reference.py"


def test_every_modalrec_command_in_the_readme_and_examples_parses() -> None:
    parser = build_parser()
    blocks = code_blocks(README.read_text(), "bash") + [(ROOT / "examples" / "quickstart.sh").read_text()]
    commands = [line for block in blocks for line in command_lines(block) if line.startswith("modalrec ")]
    assert len(commands) >= 10
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"the README's command does not parse: {command}")


def test_model_reference_lists_every_model_with_its_settings() -> None:
    from modalrec.models.registry import available_models

    reference = _generator().model_reference()
    for entry in available_models():
        assert f"\n## {entry.name}\n" in reference
    assert "| `embedding_dim` | int | `64` |" in reference
    aldi = reference.split("\n## aldi\n")[1].split("\n## ")[0]
    assert "**Training defaults with `model.backbone_run` set** (a config or `--set` wins): `patience=10`" in aldi


def test_settings_reference_takes_help_from_the_config_source() -> None:
    from modalrec.config import TrainConfig

    rows = {name: text for name, _, _, text in _generator().config_rows(TrainConfig)}
    assert rows["patience"].startswith("evaluations without improvement")


def test_cli_reference_shows_every_subcommand() -> None:
    reference = _generator().cli_reference()
    for name in ("train", "evaluate", "recommend", "explain", "benchmark", "serve", "data build", "runs compare"):
        assert f"## modalrec {name}\n" in reference


@pytest.mark.slow
def test_shell_quickstart_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-e", str(ROOT / "examples" / "quickstart.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "bench" / "results.md").is_file() and (tmp_path / "runs" / "lens" / "metrics.json").is_file()
    assert "SKU-" in done.stdout
