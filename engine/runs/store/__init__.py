"""The run store: every run, its state and its result, in SQLite.

Durability: the database runs in WAL mode with `synchronous=NORMAL`. In WAL mode a commit
is appended to the log with `write()` before `commit()` returns, so a committed run
survives a crash of the control plane (the process); only a power loss or OS crash can
drop the last commits, which is the trade SQLite documents for WAL + NORMAL and what
lets thousands of runs a second be acknowledged without an fsync each.

One connection, guarded by a lock, serves every thread. Callers that create many runs at
once pass them to `create_many()`, which commits them in one transaction.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class RunStatus(StrEnum):
    """The states of a run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    log_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task, seq);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq);
"""

_COLUMNS = (
    "id, task, status, inputs, outputs, error, attempts, max_attempts,"
    " created_at, started_at, finished_at, log_path"
)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class Run:
    """One run of a task, as stored. Times are Unix seconds."""

    id: str
    task: str
    status: RunStatus
    inputs: dict[str, Any]
    outputs: Any
    error: str | None
    attempts: int
    max_attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    log_path: str | None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final state."""
        return self.status in FINAL

    def to_dict(self, base_url: str) -> dict[str, Any]:
        """The run as the run API's JSON; times as ISO 8601 in UTC."""
        return {
            "id": self.id,
            "task": self.task,
            "status": str(self.status),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": self.error,
            "attempts": self.attempts,
            "url": f"{base_url.rstrip('/')}/runs/{self.id}",
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def _run(row: sqlite3.Row | tuple[Any, ...]) -> Run:
    (id_, task, status, inputs, outputs, error, attempts, max_attempts, *times, log) = row
    return Run(
        id=id_,
        task=task,
        status=RunStatus(status),
        inputs=json.loads(inputs),
        outputs=None if outputs is None else json.loads(outputs),
        error=error,
        attempts=attempts,
        max_attempts=max_attempts,
        created_at=times[0],
        started_at=times[1],
        finished_at=times[2],
        log_path=log,
    )


def new_run_id() -> str:
    """A short, URL-safe, unguessable run id (12 characters)."""
    return secrets.token_urlsafe(9)


class RunStore:
    """Runs in a SQLite database at `path` (created if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def create(
        self,
        task: str,
        inputs: dict[str, Any],
        *,
        max_attempts: int = 1,
        logs_dir: Path | None = None,
    ) -> Run:
        """Store a new queued run; it is committed when this returns."""
        return self.create_many([(task, inputs, max_attempts)], logs_dir=logs_dir)[0]

    def create_many(
        self,
        items: Sequence[tuple[str, dict[str, Any], int]],
        *,
        logs_dir: Path | None = None,
    ) -> list[Run]:
        """Store `(task, inputs, max_attempts)` runs in one transaction, committed on return.

        Each run's log file is `<logs_dir>/<id>.log` when `logs_dir` is given.
        """
        now = time.time()
        runs = []
        for task, inputs, max_attempts in items:
            run_id = new_run_id()
            log = None if logs_dir is None else str(logs_dir / f"{run_id}.log")
            runs.append(
                Run(
                    run_id,
                    task,
                    RunStatus.QUEUED,
                    inputs,
                    None,
                    None,
                    0,
                    max_attempts,
                    now,
                    None,
                    None,
                    log,
                )
            )
        rows = [
            (r.id, r.task, r.status, json.dumps(r.inputs), r.max_attempts, r.created_at, r.log_path)
            for r in runs
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO runs (id, task, status, inputs, max_attempts, created_at, log_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return runs

    def get(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        return None if row is None else _run(row)

    def list(
        self, task: str | None = None, status: RunStatus | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs newest first, optionally of one task and/or in one status."""
        where, args = [], []
        if task is not None:
            where.append("task = ?")
            args.append(task)
        if status is not None:
            where.append("status = ?")
            args.append(str(status))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLUMNS} FROM runs {clause} ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_run(row) for row in rows]

    def unfinished(self) -> list[Run]:
        """Runs that are queued or running, oldest first (what recovery looks at)."""
        sql = f"SELECT {_COLUMNS} FROM runs WHERE status IN (?, ?) ORDER BY seq"
        with self._lock:
            rows = self._db.execute(sql, (RunStatus.QUEUED, RunStatus.RUNNING)).fetchall()
        return [_run(row) for row in rows]

    def start_attempt(self, run_id: str) -> Run:
        """Mark the run running and count one more attempt."""
        return self._update(
            run_id,
            "status = ?, attempts = attempts + 1, started_at = ?, finished_at = NULL, error = NULL",
            (RunStatus.RUNNING, time.time()),
        )

    def requeue(self, run_id: str, error: str) -> Run:
        """Put the run back in the queue (to be retried), keeping the last attempt's error."""
        return self._update(run_id, "status = ?, error = ?", (RunStatus.QUEUED, error))

    def finish(
        self, run_id: str, status: RunStatus, *, outputs: Any = None, error: str | None = None
    ) -> Run:
        """Put the run in a final state with its outputs or error."""
        if status not in FINAL:
            raise ValueError(f"{status} is not a final state")
        encoded = None if outputs is None else json.dumps(outputs)
        return self._update(
            run_id,
            "status = ?, outputs = ?, error = ?, finished_at = ?",
            (status, encoded, error, time.time()),
        )

    def _update(self, run_id: str, assignments: str, args: Iterable[Any]) -> Run:
        sql = f"UPDATE runs SET {assignments} WHERE id = ? RETURNING {_COLUMNS}"
        with self._transaction() as db:
            rows = db.execute(sql, (*args, run_id)).fetchall()
        if not rows:
            raise KeyError(run_id)
        return _run(rows[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for one `BEGIN IMMEDIATE ... COMMIT`, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
