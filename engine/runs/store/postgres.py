"""The run store in PostgreSQL: runs shared by every control plane and app replica of a target.

Guarantees (the `RunStore` protocol's, as the SQLite store gives them):

* Every state change is one `UPDATE ... WHERE id = %s AND status = ANY(%s) RETURNING ...`:
  of two writers expecting the same state, exactly one gets the run back.
* A run is committed before any method that creates or changes it returns (the server's
  `synchronous_commit`, on by default, makes that a flushed WAL record).
* `create_many` is one transaction: all of its runs, or none.
* An idempotency key `(task, key)` names at most one run until `key_ttl` seconds after it
  was claimed. The claim is `INSERT ... ON CONFLICT` on `run_keys`, in the transaction that
  creates the run, so concurrent duplicates (from any number of processes) yield one run.

Exactly one queue runner per store: `acquire_runner_lock()` takes a session-level advisory
lock on a connection of its own, held until `close()` (or until that connection is lost, see
its docstring). A control plane runs queued runs only while it holds it; the others answer
the API.

The schema is the engine's: created on first use and migrated forward, its version in
`engine_schema`. A database written by a newer engine is refused, never downgraded.
The password is passed apart from the URL, so that the URL can be shown in every message.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from engine.backends.base import FINAL, Created, NewRun, Run, RunStatus
from engine.errors import StateError
from engine.runs.store import new_run_id

__all__ = ["SCHEMA_VERSION", "PostgresRunStore", "RunStoreError", "redact"]

SCHEMA_VERSION = 2
"""The schema this engine writes; `engine_schema.version` of a database it has migrated."""

_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: runs, and the idempotency keys that point at them.
    """
    CREATE TABLE runs (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        task text NOT NULL,
        status text NOT NULL,
        inputs json NOT NULL,
        outputs json,
        error text,
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 1,
        created_at double precision NOT NULL,
        started_at double precision,
        finished_at double precision,
        log_path text,
        handle text
    );
    CREATE INDEX runs_task ON runs (task, seq);
    CREATE INDEX runs_status ON runs (status, seq);
    CREATE TABLE run_keys (
        task text NOT NULL,
        key text NOT NULL,
        run_id text NOT NULL REFERENCES runs (id) DEFERRABLE INITIALLY DEFERRED,
        expires_at double precision NOT NULL,
        PRIMARY KEY (task, key)
    );
    CREATE INDEX run_keys_expiry ON run_keys (expires_at);
    """,
    # 1 -> 2: the request id of the request that started a run.
    "ALTER TABLE runs ADD COLUMN request_id text;",
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

# Advisory lock ids (pg_advisory_lock takes a bigint): one for migrations, one for the runner.
_MIGRATION_LOCK = 0x656E67696E65_01  # "engine", 1
_RUNNER_LOCK = 0x656E67696E65_02

_COLUMNS = (
    "id, task, status, inputs, outputs, error, attempts, max_attempts,"
    " created_at, started_at, finished_at, log_path, handle, request_id"
)
_KEY_SWEEP_EVERY = 60.0  # seconds between deletions of expired idempotency keys
# Expired keys, deleted on their own (not in a batch's transaction), skipping any a batch
# is claiming: the sweep never waits for a batch nor a batch for it.
_SWEEP = (
    "DELETE FROM run_keys WHERE (task, key) IN (SELECT task, key FROM run_keys"
    " WHERE expires_at <= %s FOR UPDATE SKIP LOCKED)"
)
_CONNECT_TIMEOUT = 5  # seconds (libpq's connect_timeout)
MAX_CONNECTIONS = 10
"""The pool's size. Each commit holds its connection until the server has flushed it, so
runs in flight beyond the pool wait for one: with 8 runs in flight the runs benchmark went
from ~190 runs/s on 4 connections to ~310 on 16 (one control plane per store)."""


class RunStoreError(StateError):
    """Raised when the run store's database cannot be used: unreachable, refused, too new."""


def redact(url: str) -> str:
    """`url` without its password (if it holds one), safe to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _run(row: TupleRow) -> Run:
    (id_, task, status, inputs, outputs, error, attempts, max_attempts, *rest) = row
    created_at, started_at, finished_at, log_path, handle, request_id = rest
    return Run(
        id=id_,
        task=task,
        status=RunStatus(status),
        inputs=inputs,
        outputs=outputs,
        error=error,
        attempts=attempts,
        max_attempts=max_attempts,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        log_path=log_path,
        handle=handle,
        request_id=request_id,
    )


def _queued(item: NewRun, run_id: str, now: float, logs_dir: Path | None) -> Run:
    log = None if logs_dir is None else str(logs_dir / f"{run_id}.log")
    return Run(
        id=run_id,
        task=item.task,
        status=RunStatus.QUEUED,
        inputs=dict(item.inputs),
        outputs=None,
        error=None,
        attempts=0,
        max_attempts=item.max_attempts,
        created_at=now,
        started_at=None,
        finished_at=None,
        log_path=log,
        request_id=item.request_id,
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class PostgresRunStore:
    """Runs in the PostgreSQL database at `url` (`postgresql://user@host:port/db`).

    Constructing it does no I/O (so `open_store()` can); the first call opens it: checks
    that the server answers, the credentials and the schema (creating or migrating it),
    then opens a pool of up to `max_connections`. `await PostgresRunStore.connect(...)`
    opens it at once, so that a bad URL fails where it is given. Raises RunStoreError.
    """

    def __init__(
        self, url: str, *, password: str | None = None, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.url = url
        self._password = password
        self._max_connections = max_connections
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._lock_conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._swept = 0.0

    def __repr__(self) -> str:
        return f"PostgresRunStore({redact(self.url)!r})"

    @classmethod
    async def connect(
        cls, url: str, *, password: str | None = None, max_connections: int = MAX_CONNECTIONS
    ) -> PostgresRunStore:
        """A store over `url`, opened."""
        store = cls(url, password=password, max_connections=max_connections)
        await store.open()
        return store

    async def open(self) -> AsyncConnectionPool:
        """Check the database, create or migrate its schema and open the pool (once)."""
        async with self._opening:
            if self._pool is None:
                async with await _connect(self.url, self._password) as conn:
                    await _migrate(conn, self.url)
                pool: AsyncConnectionPool = AsyncConnectionPool(
                    self.url,
                    kwargs=_connect_kwargs(self._password),
                    min_size=1,
                    max_size=self._max_connections,
                    open=False,
                )
                await pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        """Close the pool, and release the runner lock if this store holds it."""
        if self._lock_conn is not None:
            await self._lock_conn.close()
            self._lock_conn = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # The runner lock

    async def acquire_runner_lock(self) -> bool:
        """Try to become this store's one queue runner; True while this store holds the lock.

        A session-level advisory lock on a connection of its own: held until `close()`, or
        until that connection is lost (the server restarted, the network dropped), when
        another control plane may take it. So call it again before each round of queue
        work (it checks its connection and retakes the lock if it can) and run queued
        runs only while it answers True. It never blocks.
        """
        if self._lock_conn is not None:
            try:
                await self._lock_conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                await self._lock_conn.close()
                self._lock_conn = None
        conn = await _connect(self.url, self._password)
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_RUNNER_LOCK,))
        row = await cursor.fetchone()
        if row is None or not row[0]:
            await conn.close()
            return False
        self._lock_conn = conn
        return True

    # Creating runs

    async def create_many(
        self, items: Sequence[NewRun], *, logs_dir: Path | None = None
    ) -> list[Created]:
        """Store queued runs in one transaction (all or none), in order; each run's log
        file is `<logs_dir>/<id>.log` when `logs_dir` is given. An item whose key is held
        by a live run gets that run back, `created=False`."""
        now = time.time()
        pool = self._pool or await self.open()
        async with pool.connection() as conn:
            if now - self._swept > _KEY_SWEEP_EVERY:
                self._swept = now
                await conn.execute(_SWEEP, (now,))
            async with conn.transaction():
                # Keys are claimed in one order by every batch, so that two batches holding
                # the same keys wait for each other instead of deadlocking.
                claims = {(i.task, i.key): i for i in items if i.key is not None}
                held: dict[tuple[str, str | None], Run | str] = {}
                for pair in sorted(claims):
                    run_id = new_run_id()
                    held[pair] = await _claim_key(conn, claims[pair], run_id, now) or run_id
                results: list[Created] = []
                for item in items:
                    claim = held.get((item.task, item.key))
                    if isinstance(claim, Run):
                        results.append(Created(claim, created=False))
                        continue
                    run = _queued(item, claim or new_run_id(), now, logs_dir)
                    if claim is not None:
                        held[item.task, item.key] = run  # a second item with this key
                    results.append(Created(run))
                fresh = [c.run for c in results if c.created]
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "INSERT INTO runs (id, task, status, inputs, max_attempts, created_at,"
                        " log_path, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [(r.id, r.task, r.status.value, json.dumps(r.inputs), r.max_attempts,
                          now, r.log_path, r.request_id) for r in fresh],
                    )  # fmt: skip
        return results

    async def import_runs(self, runs: Sequence[Run]) -> int:
        """Store these runs as they are (ids, states, times), skipping ids already here;
        how many were new. One transaction. For `copy_runs`: a copy run twice copies
        nothing twice."""
        pool = self._pool or await self.open()
        async with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"
                " ON CONFLICT (id) DO NOTHING",
                [
                    (r.id, r.task, r.status.value, json.dumps(r.inputs), _json(r.outputs),
                     r.error, r.attempts, r.max_attempts, r.created_at, r.started_at,
                     r.finished_at, r.log_path, r.handle, r.request_id)
                    for r in runs
                ],
            )  # fmt: skip
            return max(cursor.rowcount, 0)

    # Reading runs

    async def get(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        rows = await self._query(f"SELECT {_COLUMNS} FROM runs WHERE id = %s", (run_id,))
        return _run(rows[0]) if rows else None

    async def list_runs(
        self, task: str | None = None, status: RunStatus | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs, newest first, optionally of one task and/or in one state."""
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM runs"
            " WHERE (%(task)s::text IS NULL OR task = %(task)s)"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " ORDER BY seq DESC LIMIT %(limit)s",
            {"task": task, "status": None if status is None else str(status), "limit": limit},
        )
        return [_run(row) for row in rows]

    async def unfinished(self) -> list[Run]:
        """Queued and running runs, oldest first."""
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM runs WHERE status = ANY(%s) ORDER BY seq",
            ([RunStatus.QUEUED.value, RunStatus.RUNNING.value],),
        )
        return [_run(row) for row in rows]

    # State changes: each a compare-and-set

    async def start_attempt(self, run_id: str) -> Run | None:
        """queued → running, counting one more attempt; None unless it was queued."""
        return await self._change(
            run_id,
            {RunStatus.QUEUED},
            "status = %s, attempts = attempts + 1, started_at = %s, finished_at = NULL,"
            " error = NULL, handle = NULL",
            (RunStatus.RUNNING.value, time.time()),
        )

    async def set_handle(self, run_id: str, handle: str | None) -> Run | None:
        """Record where the running attempt runs; None unless the run is running."""
        return await self._change(run_id, {RunStatus.RUNNING}, "handle = %s", (handle,))

    async def requeue(self, run_id: str, error: str) -> Run | None:
        """running → queued (to be retried), keeping the error; None unless it was running."""
        return await self._change(
            run_id,
            {RunStatus.RUNNING},
            "status = %s, error = %s, handle = NULL",
            (RunStatus.QUEUED.value, error),
        )

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
        return await self._change(
            run_id,
            expect,
            "status = %s, outputs = %s, error = %s, finished_at = %s",
            (status.value, _json(outputs), error, time.time()),
        )

    async def _change(
        self, run_id: str, expect: set[RunStatus] | frozenset[RunStatus], sets: str, args: tuple
    ) -> Run | None:
        rows = await self._query(
            f"UPDATE runs SET {sets} WHERE id = %s AND status = ANY(%s) RETURNING {_COLUMNS}",
            (*args, run_id, [s.value for s in expect]),
        )
        return _run(rows[0]) if rows else None

    async def _query(self, sql: str, args: Any) -> list[TupleRow]:
        pool = self._pool or await self.open()
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, args)
            return await cursor.fetchall()


async def _claim_key(
    conn: psycopg.AsyncConnection[TupleRow], item: NewRun, run_id: str, now: float
) -> Run | None:
    """Claim `(item.task, item.key)` for `run_id`; the run that holds it if it is live.

    The insert waits for a concurrent transaction claiming the same key, then sees its
    committed row (or none, if it rolled back): of any number of claimants one wins.
    """
    expires = now + item.key_ttl if item.key_ttl is not None else float("inf")
    cursor = await conn.execute(
        "INSERT INTO run_keys (task, key, run_id, expires_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (task, key) DO UPDATE"
        " SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at"
        " WHERE run_keys.expires_at <= %s RETURNING run_id",
        (item.task, item.key, run_id, expires, now),
    )
    if await cursor.fetchone() is not None:
        return None
    cursor = await conn.execute(
        f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))}"
        " FROM run_keys k JOIN runs r ON r.id = k.run_id WHERE k.task = %s AND k.key = %s",
        (item.task, item.key),
    )
    row = await cursor.fetchone()
    assert row is not None, "a live key always names a committed run"
    return _run(row)


def _connect_kwargs(password: str | None) -> dict[str, Any]:
    # autocommit: a single statement is its own transaction, one round trip instead of
    # BEGIN, statement, COMMIT; create_many opens its transaction explicitly.
    kwargs: dict[str, Any] = {
        "connect_timeout": _CONNECT_TIMEOUT,
        "application_name": "engine",
        "autocommit": True,
    }
    if password is not None:
        kwargs["password"] = password
    return kwargs


async def _connect(url: str, password: str | None) -> psycopg.AsyncConnection[TupleRow]:
    """One autocommit connection; a RunStoreError saying what to do if there is none."""
    try:
        return await psycopg.AsyncConnection.connect(url, **_connect_kwargs(password))
    except psycopg.Error as exc:
        raise RunStoreError(_explain(url, exc)) from None


def _explain(url: str, exc: psycopg.Error) -> str:
    """What went wrong connecting to `url`, and what to do, without the password."""
    shown = redact(url)
    text = str(exc)
    in_url = urllib.parse.urlsplit(url).password
    if in_url:  # libpq does not echo passwords; this makes sure of it
        text = text.replace(in_url, "***")
    if "password authentication failed" in text or "no password supplied" in text:
        return (
            f"run store {shown}: the server refused the credentials: check the user in the "
            "URL and the secret of the target's run_store_password"
        )
    if "does not exist" in text and "database" in text:
        return (
            f"run store {shown}: the database does not exist: create it "
            "(`createdb -O USER DB`) or fix the database name in the URL"
        )
    if "role" in text and "does not exist" in text:
        return f"run store {shown}: the user does not exist: create it or fix the URL's user"
    reason = text.rsplit("failed:", 1)[-1].strip().splitlines()[0] if text else type(exc).__name__
    return (
        f"run store {shown} is unreachable ({reason}): start PostgreSQL there, "
        "or fix the host and port of the target's run_store"
    )


async def _migrate(conn: psycopg.AsyncConnection[TupleRow], url: str) -> None:
    """Bring the schema to SCHEMA_VERSION, under an advisory lock so that control planes
    starting together migrate once; refuse a database of a newer version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS engine_schema (version integer NOT NULL)")
        cursor = await conn.execute("SELECT max(version) FROM engine_schema")
        row = await cursor.fetchone()
        version = row[0] if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise RunStoreError(
                f"run store {redact(url)} has schema version {version}, newer than this "
                f"engine's {SCHEMA_VERSION}: upgrade engine (pip install -U engine), or point "
                "the target's run_store at another database"
            )
        for script in _MIGRATIONS[version:]:
            await conn.execute(script)
        if version < SCHEMA_VERSION:
            await conn.execute("DELETE FROM engine_schema")
            await conn.execute("INSERT INTO engine_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
