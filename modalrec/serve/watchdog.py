"""An opt-in event-loop watchdog: finds what stops an asyncio loop from running, and for how long.

A loop that serves every request on one thread answers nothing while a callback runs long, while the thread
waits on disk or on a lock, or while the operating system does not schedule the process. A latency tail at
a steady request rate comes from such stalls, and the three causes call for different fixes, so each stall
is recorded with what tells them apart:

- ``loop_cpu_ms``: CPU time the loop's thread used during the stall (Linux: ``/proc/.../schedstat``); close
  to ``blocked_ms`` when a callback was busy computing;
- ``loop_runqueue_ms``: time the thread was runnable but waiting for a CPU; close to ``blocked_ms`` when the
  machine was busy with other processes;
- neither: the thread slept (disk, a lock, a sleep); its stack shows where;
- ``stacks``: the loop thread's distinct Python stacks seen while it was stalled (none when it was idle in
  the loop's poll, which means the loop itself was not the one waiting).

The loop schedules a heartbeat every ``tick`` seconds; a daemon thread checks it and, once the heartbeat is
``threshold`` seconds late, samples the loop thread's stack (:func:`sys._current_frames`) until it beats
again, then writes one JSON line per stall to the log. Garbage collections are logged too (``gc.callbacks``),
so a collection's pause is not mistaken for anything else. The service starts it when the environment
variable :data:`STALL_LOG_ENV` names a file (:func:`start_from_environment`); the load test uses it for its
own loop as well, so that the generator's stalls are not blamed on the server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

STALL_LOG_ENV = "MODALREC_STALL_LOG"
"""Environment variable naming the file the service's watchdog appends its JSON lines to."""
THRESHOLD_SECONDS = 0.05  # a heartbeat this late is a stall
TICK_SECONDS = 0.01  # heartbeat period of the loop
GC_LOG_SECONDS = 0.005  # collections at least this long are logged (full collections always)
MAX_STACKS = 8  # distinct stacks kept per stall


@dataclass
class _Sample:
    """What the thread, the process and the machine had used by a moment (seconds)."""

    at: float
    loop_cpu: float
    loop_runqueue: float
    process_cpu: float
    machine_steal: float


@dataclass
class _Stall:
    since: float  # the last heartbeat before it
    before: _Sample
    stacks: list[str] = field(default_factory=list)
    watcher_late: float = 0.0


def _schedstat(native_id: int) -> tuple[float, float]:
    """(CPU time, run-queue wait) of a thread of this process so far; zeros where Linux's schedstat is missing."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


def _machine_steal() -> float:
    """Seconds of CPU the hypervisor gave to other machines, summed over CPUs (0 where unknown)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class LoopWatchdog:
    """Logs every stall of an asyncio loop longer than ``threshold`` seconds to ``path`` (JSON lines).

    Call :meth:`start` from the loop's own thread (in a coroutine or callback); :meth:`stop` from anywhere.
    """

    def __init__(self, path: str | Path, *, threshold: float = THRESHOLD_SECONDS, tick: float = TICK_SECONDS,
                 name: str = "loop") -> None:
        self.path = Path(path)
        self.threshold = threshold
        self.tick = tick
        self.name = name
        self.stalls = 0
        self.worst = 0.0  # seconds, longest stall so far
        self._beat = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._loop_native = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gc_started: dict[int, float] = {}
        self._gc_events: list[dict[str, Any]] = []
        self._gc_lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin watching the running loop (or ``loop``, which must run on the calling thread)."""
        if self._thread is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._loop_native = threading.get_native_id()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._beat = time.monotonic()
        self._loop.call_soon(self._heartbeat)
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name=f"{self.name} watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set() and self._loop is not None:
            self._loop.call_later(self.tick, self._heartbeat)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        generation = int(info.get("generation", -1))
        if phase == "start":
            self._gc_started[generation] = now
            return
        took = now - self._gc_started.pop(generation, now)
        if took >= GC_LOG_SECONDS or generation == 2:
            with self._gc_lock:  # written out by the watchdog thread: no file I/O inside a collection
                self._gc_events.append({"gc": generation, "ms": round(took * 1000, 2),
                                        "collected": info.get("collected"),
                                        "thread": threading.current_thread().name, "at": time.time()})

    def _sample(self) -> _Sample:
        cpu, runqueue = _schedstat(self._loop_native)
        return _Sample(time.monotonic(), cpu, runqueue, time.process_time(), _machine_steal())

    def _stack(self) -> str | None:
        """The loop thread's Python stack, or None while it waits in the loop's own poll (idle)."""
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return None
        lines = traceback.format_stack(frame)
        return "".join(lines[-25:])

    def _watch(self) -> None:
        with open(self.path, "a", encoding="utf-8") as log:
            self._write(log, {"event": "watching", "name": self.name, "pid": os.getpid(),
                              "threshold_ms": self.threshold * 1000, "tick_ms": self.tick * 1000})
            baseline = self._sample()
            last_beat = self._beat
            stall: _Stall | None = None
            while not self._stop.is_set():
                asked = time.monotonic()
                self._stop.wait(self.tick)
                late = time.monotonic() - asked - self.tick  # this thread's own wait for the CPU and the GIL
                beat = self._beat
                if stall is None and beat != last_beat:
                    baseline, last_beat = self._sample(), beat
                elif stall is None and time.monotonic() - beat > self.threshold:
                    stall = _Stall(beat, baseline)
                if stall is not None:
                    stall.watcher_late = max(stall.watcher_late, late)
                    if beat != stall.since:
                        self._finish(log, stall, beat)
                        stall, baseline, last_beat = None, self._sample(), beat
                    else:
                        stack = self._stack()
                        if stack and stack not in stall.stacks and len(stall.stacks) < MAX_STACKS:
                            stall.stacks.append(stack)
                self._flush_gc(log)

    def _finish(self, log: TextIO, stall: _Stall, beat: float) -> None:
        after = self._sample()
        blocked = beat - stall.since - self.tick  # the heartbeat came this much later than planned
        self.stalls += 1
        self.worst = max(self.worst, blocked)
        window = after.at - stall.before.at
        self._write(log, {
            "event": "stall", "name": self.name, "at": time.time() - (time.monotonic() - stall.since),
            "blocked_ms": round(blocked * 1000, 1),
            "window_ms": round(window * 1000, 1),  # the span the counters below cover (>= blocked)
            "loop_cpu_ms": round((after.loop_cpu - stall.before.loop_cpu) * 1000, 1),
            "loop_runqueue_ms": round((after.loop_runqueue - stall.before.loop_runqueue) * 1000, 1),
            "process_cpu_ms": round((after.process_cpu - stall.before.process_cpu) * 1000, 1),
            "machine_steal_ms": round((after.machine_steal - stall.before.machine_steal) * 1000, 1),
            "watchdog_late_ms": round(stall.watcher_late * 1000, 1),
            "load": os.getloadavg(),
            "stacks": stall.stacks,
        })

    def _flush_gc(self, log: TextIO) -> None:
        if not self._gc_events:
            return
        with self._gc_lock:
            events, self._gc_events = self._gc_events, []
        for event in events:
            self._write(log, {"event": "gc", "name": self.name, **event})

    @staticmethod
    def _write(log: TextIO, record: dict[str, Any]) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()


def start_from_environment(name: str = "server") -> LoopWatchdog | None:
    """Start a watchdog on the running loop when :data:`STALL_LOG_ENV` names a file; None when unset."""
    path = os.environ.get(STALL_LOG_ENV, "").strip()
    if not path:
        return None
    watchdog = LoopWatchdog(path, name=name)
    watchdog.start()
    return watchdog


def read_stalls(path: str | Path) -> list[dict[str, Any]]:
    """The stall records of a watchdog log (its other lines left out)."""
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("event") == "stall"]
