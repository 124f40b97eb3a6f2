"""Python 3.10 has no ``tomllib``: the config loader must fall back to the ``tomli`` backport."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
sys.modules["tomllib"] = None  # what Python 3.10 looks like to an import: no such module
from modalrec import config
print(config.tomllib.__name__)
print(config.read_config_file(sys.argv[1]))
"""


def test_toml_loads_without_tomllib(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('model_name = "bpr"\n[train]\nepochs = 3\n')
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    name, loaded = result.stdout.splitlines()
    assert name == "tomli"
    assert loaded == str({"model_name": "bpr", "train": {"epochs": 3}})


def test_bad_toml_is_a_config_error_through_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train\n")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "not valid TOML" in result.stderr
