"""The feedback store's group commit (issue 17, serving under load): requests that queue up while the disk
syncs share one transaction, each is still all or nothing and acknowledged only once committed, a bad one
fails alone, and acknowledged writes from concurrent writers survive a kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from modalrec.serve import feedback as feedback_module
from modalrec.serve.feedback import FeedbackEvent, FeedbackStore


def click(user: str | None, n: float = 1.0) -> FeedbackEvent:
    return FeedbackEvent(user, "i", "click", n, "A")  # type: ignore[arg-type]  # None: a row the schema refuses


def record_writes(store: FeedbackStore) -> list[int]:
    """Row counts of the store's transactions from now on."""
    sizes: list[int] = []
    write = store._write

    def counted(statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        write(statement, rows)
        sizes.append(len(rows))

    store._write = counted  # type: ignore[method-assign]
    return sizes


def test_requests_queued_during_a_commit_share_the_next_transaction(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        sizes = record_writes(store)
        with store._lock:  # the disk is busy: the writer waits, requests queue up
            futures = [store.submit([click(f"u{n}"), click(f"u{n}")]) for n in range(6)]
            time.sleep(0.2)
            assert not any(f.done() for f in futures)  # nothing is acknowledged before it is committed
        for future in futures:
            future.result(timeout=30)
        assert store.count() == 12 and sum(sizes) == 12
        assert len(sizes) <= 2  # the first request may have been taken alone before the others queued


def test_a_bad_request_fails_alone_and_all_or_nothing(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        with store._lock:
            good = store.submit([click("u1")])
            bad = store.submit([click("u2"), click(None)])  # its first row is good, its second is refused
            later = store.submit([click("u3"), click("u4")])
        good.result(timeout=30)
        later.result(timeout=30)
        with pytest.raises(sqlite3.IntegrityError):
            bad.result(timeout=30)
        users = {row[0] for row in store._connection.execute("SELECT user_id FROM feedback")}
        assert users == {"u1", "u3", "u4"}


def test_close_writes_what_is_queued_and_then_refuses(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite")
    with store._lock:
        futures = [store.submit([click(f"u{n}")]) for n in range(5)]
    store.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.append([click("late")])
    with sqlite3.connect(tmp_path / "f.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 5


def test_the_writer_thread_ends_when_idle_and_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback_module, "WRITER_IDLE_SECONDS", 0.05)
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        assert store._writer is None  # an unused store holds no thread
        store.append([click("u1")])
        writer = store._writer
        assert writer is not None
        writer.join(timeout=10)
        assert not writer.is_alive() and store._writer is None
        store.append([click("u2")])
        assert store.count() == 2


WRITERS_SCRIPT = textwrap.dedent("""
    import sys, threading
    from modalrec.serve.feedback import FeedbackEvent, FeedbackStore
    store = FeedbackStore(sys.argv[1])
    printed = threading.Lock()

    def write(lane):
        n = 0
        while True:
            user = f"w{lane}-{n}"
            store.append([FeedbackEvent(user, "i", "click", 1.0, "A")])
            with printed:
                print(user, flush=True)  # acknowledged
            n += 1

    for lane in range(8):
        threading.Thread(target=write, args=(lane,), daemon=True).start()
    threading.Event().wait()
""")


def test_acknowledged_writes_of_concurrent_writers_survive_a_kill(tmp_path: Path) -> None:
    script = tmp_path / "writers.py"
    script.write_text(WRITERS_SCRIPT)
    db = tmp_path / "f.sqlite"
    process = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    acknowledged: list[str] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(line.strip() for line in process.stdout or ()))
    reader.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 200 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no close, no checkpoint
    process.wait(timeout=30)
    reader.join(timeout=30)
    assert process.returncode == -9 and len(acknowledged) >= 200
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in connection.execute("SELECT user_id FROM feedback")}
    assert set(acknowledged) <= stored
