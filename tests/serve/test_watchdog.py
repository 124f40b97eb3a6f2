"""The event-loop watchdog (issue 17, serving under load): a blocked loop is logged with how long, where and
why; an idle loop is not; the service starts it only when MODALREC_STALL_LOG names a file."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modalrec.serve.server import with_stall_watchdog
from modalrec.serve.watchdog import STALL_LOG_ENV, LoopWatchdog, read_stalls, start_from_environment


def watched(path: Path, work: Any, threshold: float = 0.1) -> LoopWatchdog:
    """Run ``work()`` (a coroutine function) on a fresh loop under a watchdog logging to ``path``; the threshold
    is above the few tens of milliseconds a loaded machine may keep a process waiting, so only ``work`` stalls."""
    watchdog = LoopWatchdog(path, name="test", threshold=threshold)

    async def main() -> None:
        watchdog.start()
        await asyncio.sleep(0.1)
        await work()
        await asyncio.sleep(0.1)  # the heartbeat resumes: the stall is written

    try:
        asyncio.run(main())
    finally:
        watchdog.stop()
    return watchdog


def test_a_blocking_call_on_the_loop_is_logged_with_its_stack(tmp_path: Path) -> None:
    async def sleeps_on_the_loop() -> None:
        time.sleep(0.3)

    watchdog = watched(tmp_path / "stalls.jsonl", sleeps_on_the_loop)
    stalls = read_stalls(tmp_path / "stalls.jsonl")
    assert len(stalls) == watchdog.stalls >= 1
    stall = max(stalls, key=lambda s: s["blocked_ms"])
    assert 250 <= stall["blocked_ms"] <= 1000
    assert any("sleeps_on_the_loop" in stack for stack in stall["stacks"])
    assert stall["loop_cpu_ms"] < 0.5 * stall["blocked_ms"]  # asleep, not computing
    assert {"loop_runqueue_ms", "machine_steal_ms", "watchdog_late_ms", "load"} <= stall.keys()


def test_a_busy_callback_counts_as_loop_cpu(tmp_path: Path) -> None:
    async def computes_on_the_loop() -> None:
        until = time.perf_counter() + 0.2
        while time.perf_counter() < until:
            pass

    watched(tmp_path / "stalls.jsonl", computes_on_the_loop)
    stall = max(read_stalls(tmp_path / "stalls.jsonl"), key=lambda s: s["blocked_ms"])
    # computing, or (on a busy machine) waiting for a CPU to compute on: not asleep
    assert stall["loop_cpu_ms"] + stall["loop_runqueue_ms"] >= 0.5 * stall["blocked_ms"]
    assert any("computes_on_the_loop" in stack for stack in stall["stacks"])


def test_a_loop_that_keeps_answering_logs_no_stall(tmp_path: Path) -> None:
    async def short_steps() -> None:  # 0.5 s in all, in steps of 20 ms
        for _ in range(25):
            time.sleep(0.02)
            await asyncio.sleep(0)

    watchdog = watched(tmp_path / "stalls.jsonl", short_steps, threshold=0.25)
    assert read_stalls(tmp_path / "stalls.jsonl") == [] and watchdog.stalls == 0
    first = json.loads((tmp_path / "stalls.jsonl").read_text().splitlines()[0])
    assert first["event"] == "watching" and first["threshold_ms"] == 250.0


def test_full_garbage_collections_are_logged(tmp_path: Path) -> None:
    async def collects() -> None:
        gc.collect()

    watched(tmp_path / "stalls.jsonl", collects)
    records = [json.loads(line) for line in (tmp_path / "stalls.jsonl").read_text().splitlines()]
    assert any(r["event"] == "gc" and r["gc"] == 2 for r in records)


def test_the_service_starts_it_only_when_the_variable_names_a_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STALL_LOG_ENV, raising=False)
    assert asyncio.run(_start()) is None
    app = FastAPI()
    assert with_stall_watchdog(app) is app  # no layer on the requests' path when the watchdog is off

    @app.get("/block")
    async def block() -> dict[str, bool]:
        time.sleep(0.2)  # a handler that blocks the loop
        return {"ok": True}

    log = tmp_path / "server.jsonl"
    monkeypatch.setenv(STALL_LOG_ENV, str(log))
    with TestClient(with_stall_watchdog(app)) as client:
        assert client.get("/block").json() == {"ok": True}
        time.sleep(0.1)
    stalls = read_stalls(log)
    assert stalls and all(s["name"] == "server" for s in stalls)
    assert any("in block" in stack for s in stalls for stack in s["stacks"])


async def _start() -> LoopWatchdog | None:
    return start_from_environment()
