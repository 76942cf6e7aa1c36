"""Where each revision's analysis window starts: one row per (namespace, name, revision)
in an embedded SQLite file, so a restart (or a second replica on the same file) keeps the
evidence gathered so far instead of starting the window again."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from rolloutlab.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS revisions (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    PRIMARY KEY (namespace, name, revision)
)
"""


class RevisionStore:
    """First-seen times of canary revisions (Flagger's checksum, Argo's pod-template hash).

    ``path`` is a file (``":memory:"`` keeps it in this process only). The first caller
    to see a revision fixes its start; every later call, from any process on the same
    file, reads the same start (``INSERT OR IGNORE`` then ``SELECT``, one transaction).
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str, str], datetime] = {}  # a start never changes
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as exc:
            raise StorageError(
                f"revision store {self.path}: {exc}. Give --state a writable file path."
            ) from None

    def __repr__(self) -> str:
        return f"<RevisionStore {self.path}>"

    def start(self, namespace: str, name: str, revision: str, now: datetime) -> datetime:
        """The start of ``revision``'s window: ``now`` if it is new, else the stored one."""
        key = (namespace, name, revision)
        known = self._known.get(key)
        if known is not None:
            return known
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO revisions VALUES (?, ?, ?, ?)", (*key, int(now.timestamp()))
            )
            (start_s,) = self._db.execute(
                "SELECT start_s FROM revisions WHERE namespace=? AND name=? AND revision=?", key
            ).fetchone()
        start = self._known[key] = datetime.fromtimestamp(start_s, UTC)
        return start

    def get(self, namespace: str, name: str, revision: str) -> datetime | None:
        """The stored start of ``revision``'s window, None when it was never seen."""
        key = (namespace, name, revision)
        if key in self._known:
            return self._known[key]
        with self._lock:
            row = self._db.execute(
                "SELECT start_s FROM revisions WHERE namespace=? AND name=? AND revision=?", key
            ).fetchone()
        if row is None:
            return None
        start = self._known[key] = datetime.fromtimestamp(row[0], UTC)
        return start

    def latest(self, namespace: str, name: str) -> str | None:
        """The revision of this canary seen last (the one a call without one judges)."""
        with self._lock:
            row = self._db.execute(
                "SELECT revision FROM revisions WHERE namespace=? AND name=? "
                "ORDER BY start_s DESC, rowid DESC LIMIT 1",
                (namespace, name),
            ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
