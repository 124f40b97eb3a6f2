"""Waiting on a peer's child process with a time limit, and the last line of its log."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any


def wait_child(child: subprocess.Popen[bytes], timeout: float | None) -> tuple[int | None, Any]:
    """(exit code, resource usage) of ``child``; (None, usage) after killing it when ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode, usage
        if deadline is not None and time.monotonic() > deadline:
            child.kill()
            _, _, usage = os.wait4(child.pid, 0)
            child.returncode = -9
            return None, usage
        time.sleep(0.2)


def last_line(log: Path) -> str:
    """The last non-blank line of ``log``, at most 300 characters: the reason a child failed."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
