"""The run store in SQLite: one file, one connection, called inline on the event loop.

Durability: the database runs in WAL mode with `synchronous=NORMAL`. In WAL mode a commit
is appended to the log with `write()` before `commit()` returns, so a committed run
survives a crash of the control plane (the process); only a power loss or OS crash can
drop the last commits, which is the trade SQLite documents for WAL + NORMAL and what
lets thousands of runs a second be acknowledged without an fsync each.

The methods are `async def` for the `RunStore` protocol but never leave the event loop's
thread: each SQLite call takes microseconds, far less than a hop to a thread would. So a
caller on the loop sees no other change between two of its calls unless it awaits
something else. Every state change is one `UPDATE ... WHERE id = ? AND status IN (...)
RETURNING` (a compare-and-set); batches of submissions commit in one transaction.

Idempotency keys live in `run_keys` (`(task, key)` unique) with an expiry: within it, a
submission with the same key gets the first run back.

Schema versions (`PRAGMA user_version`): 0 the first release (runs only), 1 adds
`runs.handle` and `run_keys`, 2 `runs.request_id`. Opening an older file migrates it in
place.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from engine.runs.store import FINAL, Created, NewRun, Run, RunStatus, new_run_id

VERSION = 2

_RUNS = """
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

_MIGRATIONS = {
    1: """
ALTER TABLE runs ADD COLUMN handle TEXT;
CREATE TABLE run_keys (
    task TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (task, key)
);
""",
    2: "ALTER TABLE runs ADD COLUMN request_id TEXT;",
}

_COLUMNS = (
    "id, task, status, inputs, outputs, error, attempts, max_attempts,"
    " created_at, started_at, finished_at, log_path, handle, request_id"
)


def _run(row: tuple[Any, ...]) -> Run:
    (id_, task, status, inputs, outputs, error, attempts, max_attempts, *rest) = row
    *times, log, handle, request = rest
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
        handle=handle,
        request_id=request,
    )


class SQLiteRunStore:
    """Runs in a SQLite database at `path` (created, or migrated, when opened)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection; the store is used from one event loop, which may run in another
        # thread than the one that opened it (a test server), hence check_same_thread.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        if self._db.execute("PRAGMA user_version").fetchone()[0] == VERSION:
            return  # current: opening takes no write lock (the CLI reads history so)
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise UsageError(
                    f"{self.path} has run-store schema version {version}, newer than this "
                    f"engine's ({VERSION}); upgrade engine to open it"
                )
            scripts = ([_RUNS] if version == 0 else []) + [
                _MIGRATIONS[v] for v in range(version + 1, VERSION + 1)
            ]
            for script in scripts:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {VERSION}")

    async def close(self) -> None:
        """Close the database."""
        self._db.close()

    async def create_many(
        self, items: Sequence[NewRun], *, logs_dir: Path | None = None
    ) -> list[Created]:
        """Store queued runs in one transaction, committed on return; a keyed duplicate
        gets the existing run back (`created=False`). Logs are `<logs_dir>/<id>.log`."""
        now = time.time()
        created: list[Created] = []
        with self._transaction() as db:
            for item in items:
                existing = self._keyed(db, item, now) if item.key is not None else None
                if existing is not None:
                    created.append(Created(existing, created=False))
                    continue
                run_id = new_run_id()
                log = None if logs_dir is None else str(logs_dir / f"{run_id}.log")
                inputs = dict(item.inputs)
                db.execute(
                    "INSERT INTO runs (id, task, status, inputs, max_attempts, created_at,"
                    " log_path, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, item.task, RunStatus.QUEUED, json.dumps(inputs), item.max_attempts,
                     now, log, item.request_id),
                )  # fmt: skip
                if item.key is not None:
                    expires = None if item.key_ttl is None else now + item.key_ttl
                    db.execute(
                        "INSERT INTO run_keys (task, key, run_id, expires_at) VALUES (?, ?, ?, ?)",
                        (item.task, item.key, run_id, expires),
                    )
                run = Run(run_id, item.task, RunStatus.QUEUED, inputs, None, None, 0,
                          item.max_attempts, now, None, None, log,
                          request_id=item.request_id)  # fmt: skip
                created.append(Created(run))
        return created

    def _keyed(self, db: sqlite3.Connection, item: NewRun, now: float) -> Run | None:
        """The live run holding `item`'s key, after dropping the key if it expired."""
        db.execute(
            "DELETE FROM run_keys WHERE task = ? AND key = ? AND expires_at <= ?",
            (item.task, item.key, now),
        )
        row = db.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE id ="
            " (SELECT run_id FROM run_keys WHERE task = ? AND key = ?)",
            (item.task, item.key),
        ).fetchone()
        return None if row is None else _run(row)

    async def get(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run(row)

    async def list_runs(
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
        return [_run(row) for row in self._db.execute(sql, (*args, limit)).fetchall()]

    async def unfinished(self) -> list[Run]:
        """Runs that are queued or running, oldest first (what recovery looks at)."""
        sql = f"SELECT {_COLUMNS} FROM runs WHERE status IN (?, ?) ORDER BY seq"
        rows = self._db.execute(sql, (RunStatus.QUEUED, RunStatus.RUNNING)).fetchall()
        return [_run(row) for row in rows]

    async def start_attempt(self, run_id: str) -> Run | None:
        """queued → running, counting one more attempt; None unless it was queued."""
        return self._update(
            run_id,
            "status = ?, attempts = attempts + 1, started_at = ?, finished_at = NULL,"
            " error = NULL, handle = NULL",
            (RunStatus.RUNNING, time.time()),
            (RunStatus.QUEUED,),
        )

    async def set_handle(self, run_id: str, handle: str | None) -> Run | None:
        """Record where the running attempt runs; None unless the run is running."""
        return self._update(run_id, "handle = ?", (handle,), (RunStatus.RUNNING,))

    async def requeue(self, run_id: str, error: str) -> Run | None:
        """running → queued (to be retried), keeping the error; None unless it was running."""
        return self._update(
            run_id, "status = ?, error = ?, handle = NULL", (RunStatus.QUEUED, error),
            (RunStatus.RUNNING,),
        )  # fmt: skip

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        outputs: Any = None,
        error: str | None = None,
        expect: frozenset[RunStatus] = frozenset({RunStatus.RUNNING}),
    ) -> Run | None:
        """Put the run in the final `status` if it is in one of `expect`; else None."""
        if status not in FINAL:
            raise ValueError(f"{status} is not a final state")
        encoded = None if outputs is None else json.dumps(outputs)
        return self._update(
            run_id,
            "status = ?, outputs = ?, error = ?, finished_at = ?",
            (status, encoded, error, time.time()),
            tuple(sorted(expect)),
        )

    def _update(
        self, run_id: str, assignments: str, args: tuple[Any, ...], expect: tuple[str, ...]
    ) -> Run | None:
        # One statement in autocommit mode is its own transaction: committed on return.
        marks = ", ".join("?" * len(expect))
        sql = (
            f"UPDATE runs SET {assignments} WHERE id = ? AND status IN ({marks})"
            f" RETURNING {_COLUMNS}"
        )
        # fetchall: the statement, and so its transaction, ends only once it is consumed.
        rows = self._db.execute(sql, (*args, run_id, *expect)).fetchall()
        return _run(rows[0]) if rows else None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE ... COMMIT`, rolled back on error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
