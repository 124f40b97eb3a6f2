"""Durable feedback events (impressions, clicks, purchases) in an embedded SQLite database.

The database runs in WAL mode with ``synchronous=FULL``: every write is one transaction whose commit
returns only once the write-ahead log is on disk, so an event the service has acknowledged survives a crash
of the process or the machine. Each event records the A/B arm that served the user.

Schema::

    feedback(id INTEGER PRIMARY KEY, user_id TEXT, item_id TEXT, event TEXT,
             timestamp REAL,    -- when it happened (client's clock, seconds since 1970)
             arm TEXT,          -- A or B
             received_at REAL)  -- when the service stored it
    experiment(key TEXT PRIMARY KEY, value TEXT)  -- the arms' runs, split and salt, for reports
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from modalrec.errors import ModalrecError, WriteError

FEEDBACK_FILE = "feedback.sqlite"
EVENTS = ("impression", "click", "purchase")

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


class FeedbackStore:
    """Appends feedback events durably; safe to share between threads (one connection behind a lock).

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

    def append(self, events: Sequence[FeedbackEvent]) -> None:
        """Store ``events`` in one transaction; returns once they are on disk."""
        received = time.time()
        rows = [(e.user_id, e.item_id, e.event, e.timestamp, e.arm, received) for e in events]
        self._write("INSERT INTO feedback (user_id, item_id, event, timestamp, arm, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)

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
