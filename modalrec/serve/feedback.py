"""Durable feedback events (impressions, clicks, purchases) in an embedded SQLite database.

The database runs in WAL mode with ``synchronous=FULL``: a commit returns only once the write-ahead log is on
disk, so an event the service has acknowledged survives a crash of the process or the machine. Each event
records the A/B arm that served the user.

Writes go through one writer thread that commits what has queued up meanwhile in one transaction (a group
commit): under load, requests that arrive while the disk syncs share the next sync instead of queueing for
one each. Each request (one :meth:`FeedbackStore.append` or :meth:`FeedbackStore.submit`) is all or nothing
and is acknowledged only once the transaction holding it has committed; when a group fails, each of its
requests is written again on its own, so a bad request fails alone, as it would have without the others.

Schema::

    feedback(id INTEGER PRIMARY KEY, user_id TEXT, item_id TEXT, event TEXT,
             timestamp REAL,    -- when it happened (client's clock, seconds since 1970)
             arm TEXT,          -- A or B
             received_at REAL)  -- when the service stored it
    experiment(key TEXT PRIMARY KEY, value TEXT)  -- the arms' runs, split and salt, for reports
"""

from __future__ import annotations

import errno
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from modalrec.errors import ModalrecError, WriteError

FEEDBACK_FILE = "feedback.sqlite"
EVENTS = ("impression", "click", "purchase")
MAX_GROUP_REQUESTS = 256  # requests committed together at most
WRITER_IDLE_SECONDS = 2.0  # the writer thread ends after this long without requests; the next one starts it again
_INSERT = ("INSERT INTO feedback (user_id, item_id, event, timestamp, arm, received_at) "
           "VALUES (?, ?, ?, ?, ?, ?)")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp REAL NOT NULL,
    arm TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_arm_event ON feedback (arm, event);
CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class FeedbackEvent:
    user_id: str
    item_id: str
    event: str  # one of EVENTS
    timestamp: float  # seconds since 1970
    arm: str


@dataclass(frozen=True)
class ArmCounts:
    """What one arm's users did: distinct users and the count of each event."""

    arm: str
    users: int
    impressions: int
    clicks: int
    purchases: int


@dataclass(frozen=True)
class _Request:
    """One append's rows and the future its caller waits on."""

    rows: list[tuple[object, ...]]
    done: Future[None]


class FeedbackStore:
    """Appends feedback events durably; safe to share between threads (one connection behind a lock, written
    by one writer thread; see the module's docstring).

    Args:
        path: the SQLite file; created with its schema when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA busy_timeout=5000")
            self._connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ModalrecError(f"{self.path}: cannot open the feedback database ({exc})") from None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._queue_lock = threading.Lock()  # guards queueing, starting and ending the writer, and closing
        self._closed = False
        self._writer: threading.Thread | None = None

    def append(self, events: Sequence[FeedbackEvent]) -> None:
        """Store ``events``, all or none; returns once they are on disk."""
        self.submit(events).result()

    def submit(self, events: Sequence[FeedbackEvent]) -> Future[None]:
        """Queue ``events`` for the writer; the future completes once they are on disk, or fails with what
        :meth:`append` would raise (WriteError for a full disk or a read-only database)."""
        received = time.time()
        request = _Request([(e.user_id, e.item_id, e.event, e.timestamp, e.arm, received) for e in events],
                           Future())
        with self._queue_lock:
            if self._closed:
                raise sqlite3.ProgrammingError(f"{self.path}: the feedback store is closed")
            self._queue.put(request)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, daemon=True,
                                                name=f"feedback writer {self.path.name}")
                self._writer.start()
        return request.done

    def _write_queued(self) -> None:
        """The writer thread: commits the queued requests, those that arrived together in one transaction;
        ends at close's stop sign or once idle (so that an unused store holds no thread)."""
        while True:
            try:
                first = self._queue.get(timeout=WRITER_IDLE_SECONDS)
            except queue.Empty:
                with self._queue_lock:
                    if self._queue.empty():
                        self._writer = None
                        return
                continue
            if first is None:
                return
            group, stop = [first], False
            while len(group) < MAX_GROUP_REQUESTS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._commit([request for request in group if request.done.set_running_or_notify_cancel()])
            if stop:
                return

    def _commit(self, group: list[_Request]) -> None:
        if len(group) > 1:
            try:
                self._write(_INSERT, [row for request in group for row in request.rows])
            except Exception:  # each request again on its own: a bad one fails alone
                pass
            else:
                for request in group:
                    request.done.set_result(None)
                return
        for request in group:
            try:
                self._write(_INSERT, request.rows)
            except Exception as exc:  # handed to the caller waiting on the future
                request.done.set_exception(exc)
            else:
                request.done.set_result(None)

    def set_experiment(self, values: dict[str, str]) -> None:
        """Record how the experiment is set up (arms' runs, split, salt); later values replace earlier ones."""
        self._write("INSERT OR REPLACE INTO experiment (key, value) VALUES (?, ?)", list(values.items()))

    def _write(self, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        """All ``rows`` or none: one transaction, rolled back on any failure. A full disk or a read-only
        database raises WriteError; the connection stays usable."""
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    self._connection.executemany(statement, rows)
                    self._connection.execute("COMMIT")
                except BaseException:
                    if self._connection.in_transaction:
                        self._connection.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                code = errno.ENOSPC if "full" in str(exc) else errno.EIO
                raise WriteError(self.path, OSError(code, str(exc))) from None

    def experiment(self) -> dict[str, str]:
        with self._lock:
            return dict(self._connection.execute("SELECT key, value FROM experiment ORDER BY key").fetchall())

    def counts(self) -> list[ArmCounts]:
        """Per-arm users and event counts, arms in name order."""
        query = """
            SELECT arm, COUNT(DISTINCT user_id),
                   SUM(event = 'impression'), SUM(event = 'click'), SUM(event = 'purchase')
            FROM feedback GROUP BY arm ORDER BY arm"""
        with self._lock:
            rows = self._connection.execute(query).fetchall()
        return [ArmCounts(arm, users, impressions or 0, clicks or 0, purchases or 0)
                for arm, users, impressions, clicks, purchases in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def close(self) -> None:
        """Write what is queued, stop the writer and close the database."""
        with self._queue_lock:
            writer, self._closed = (None if self._closed else self._writer), True
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        with self._lock:
            self._connection.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def open_existing(path: str | Path) -> FeedbackStore:
    """A store for reports: the file must exist already (a typo must not create an empty database)."""
    if not Path(path).is_file():
        raise ModalrecError(f"{path}: no such feedback database (the service writes {FEEDBACK_FILE} "
                            "in the run folder, or where --db says)")
    return FeedbackStore(path)
