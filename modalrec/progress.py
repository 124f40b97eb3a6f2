"""Progress for long steps: a tqdm bar on a terminal, plain periodic log lines anywhere else.

Under a job scheduler or CI the output is a file, where a bar prints nothing useful (tqdm disables itself)
and a redrawn bar would be noise. There, :func:`progress` logs one line every ``interval`` seconds (and one
at the end) to the ``modalrec.progress`` logger: done/total, the rate, elapsed time and the step's own
figures (loss, validation metric), e.g.::

    INFO modalrec.progress: train freedom: epoch 12/300, loss 0.2345, recall@20 0.0812, 35 s elapsed
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

log = logging.getLogger("modalrec.progress")

DEFAULT_INTERVAL = 10.0  # seconds between lines; $MODALREC_PROGRESS_SECONDS changes it


class Progress(Protocol):
    """What the code driving a long step calls: tqdm's bar has this interface, and so has :class:`LineProgress`."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> Any: ...


def progress(total: int, desc: str, unit: str, *, enabled: bool = True, initial: int = 0,
             interval: float | None = None, terminal: bool | None = None) -> Progress:
    """A progress reporter for ``total`` steps of ``unit``: tqdm on a terminal (``terminal`` None: when
    standard error is one), else periodic log lines; nothing at all when not ``enabled``."""
    if terminal is None:
        terminal = sys.stderr.isatty()
    if enabled and terminal:
        from tqdm.auto import tqdm

        bar: Progress = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        return bar
    if interval is None:
        interval = float(os.environ.get("MODALREC_PROGRESS_SECONDS", DEFAULT_INTERVAL) or DEFAULT_INTERVAL)
    return LineProgress(total, desc, unit, initial=initial, interval=interval, enabled=enabled)


class LineProgress:
    """Logs ``desc: unit done/total[, rate], figures, elapsed`` at most every ``interval`` seconds and at the end.

    Epochs are reported as ``epoch 12/300``; other units (items) as ``1200/7050 items, 85.3 items/s``.
    """

    def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0, interval: float = DEFAULT_INTERVAL,
                 enabled: bool = True) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.initial = initial
        self.interval = interval
        self.enabled = enabled
        self.figures: dict[str, Any] = {}
        self.start = self.last = time.perf_counter()
        self.logged_at = -1

    def update(self, n: float = 1) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True) -> None:
        self.figures = dict(ordered_dict or {})

    def close(self) -> None:
        if self.done != self.logged_at and self.done > self.initial:
            self._log(time.perf_counter())

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def line(self, now: float) -> str:
        """The text of one progress line at time ``now``."""
        elapsed = now - self.start
        if self.unit == "epoch":
            parts = [f"epoch {self.done}/{self.total}"]
        else:
            rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
            parts = [f"{self.done}/{self.total} {self.unit}s", f"{rate:.1f} {self.unit}s/s"]
        parts += [f"{name} {value}" for name, value in self.figures.items()]
        parts.append(f"{elapsed:.0f} s elapsed")
        return f"{self.desc}: " + ", ".join(parts)

    def _log(self, now: float) -> None:
        if self.enabled:
            self.logged_at = self.done
            log.info(self.line(now))
