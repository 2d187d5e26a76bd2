"""Remembering webhook delivery ids in SQLite, so a redelivery starts nothing new.

The file lives in the app's data folder, so it survives a restart and is shared by the
app's worker processes. Each call opens its own short connection (SQLite connections are
bound to a thread); callers run these in a worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

__all__ = ["DeliveryLog"]


class DeliveryLog:
    """Delivery ids seen by one webhook (`scope`) within the last `window` seconds."""

    def __init__(self, path: Path, scope: str, window: float) -> None:
        self.path = path
        self.scope = scope
        self.window = window
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS deliveries ("
                " scope TEXT NOT NULL, delivery TEXT NOT NULL, seen REAL NOT NULL,"
                " PRIMARY KEY (scope, delivery))"
            )

    def claim(self, delivery: str) -> bool:
        """Record `delivery`; True if it is new (or its earlier sighting has expired)."""
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "DELETE FROM deliveries WHERE scope = ? AND seen < ?",
                (self.scope, now - self.window),
            )
            cursor = db.execute(
                "INSERT OR IGNORE INTO deliveries (scope, delivery, seen) VALUES (?, ?, ?)",
                (self.scope, delivery, now),
            )
            db.execute("COMMIT")
            return cursor.rowcount == 1

    def release(self, delivery: str) -> None:
        """Forget `delivery`, so that a redelivery is handled (its first handling failed)."""
        with closing(self._connect()) as db:
            db.execute(
                "DELETE FROM deliveries WHERE scope = ? AND delivery = ?", (self.scope, delivery)
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
