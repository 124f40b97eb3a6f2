"""The quickstart in examples/ runs, and the README shows it as it is."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.mark.slow
def test_python_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "cold-item recall@20 of vbpr" in printed and "SKU-" in printed
    assert all((tmp_path / "runs" / name / "metrics.json").is_file() for name in ("bpr", "lightgcn", "vbpr"))
