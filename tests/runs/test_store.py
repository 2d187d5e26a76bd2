from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.runs.api import run_json
from engine.runs.store import NewRun, Run, RunStatus, new_run_id, open_store
from engine.runs.store.sqlite import VERSION, SQLiteRunStore

Scenario = Callable[[SQLiteRunStore], Awaitable[None]]


def test_run_ids_are_letters_and_digits_so_no_command_line_reads_one_as_an_option() -> None:
    ids = {new_run_id() for _ in range(10_000)}  # one token_urlsafe id in 32 began with "-"
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[A-Za-z0-9]{12}", i) for i in ids)


def within(path: Path, scenario: Scenario) -> None:
    """Run `scenario` against a store at `path`, closed afterwards."""

    async def run() -> None:
        store = SQLiteRunStore(path)
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(run())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / ".engine" / "runs.db"


async def create(
    store: SQLiteRunStore,
    task: str,
    inputs: dict[str, object],
    *,
    max_attempts: int = 1,
    logs_dir: Path | None = None,
) -> Run:
    created = await store.create_many([NewRun(task, inputs, max_attempts)], logs_dir=logs_dir)
    return created[0].run


def test_create_commits_a_queued_run_visible_to_another_connection(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        run = await create(store, "add", {"x": 1}, max_attempts=3, logs_dir=Path("/logs"))
        row = sqlite3.connect(db).execute(
            "SELECT task, status, inputs, attempts, max_attempts FROM runs WHERE id = ?", (run.id,)
        )
        assert row.fetchone() == ("add", "queued", '{"x": 1}', 0, 3)
        assert run.log_path == f"/logs/{run.id}.log"
        assert await store.get(run.id) == run

    within(db, scenario)


def test_database_is_in_wal_mode_at_the_current_version(db: Path) -> None:
    within(db, lambda store: asyncio.sleep(0))
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA user_version").fetchone() == (VERSION,)


def test_ids_are_short_url_safe_and_unique(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        created = await store.create_many([NewRun("add", {})] * 500)
        ids = {c.run.id for c in created}
        assert len(ids) == 500 and all(c.created for c in created)
        assert all(len(i) == 12 and i.replace("-", "").replace("_", "").isalnum() for i in ids)

    within(db, scenario)


def test_list_is_newest_first_and_filters(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        a = await create(store, "a", {})
        b = await create(store, "b", {})
        c = await create(store, "a", {})
        await store.start_attempt(c.id)
        assert [r.id for r in await store.list_runs()] == [c.id, b.id, a.id]
        assert [r.id for r in await store.list_runs(task="a")] == [c.id, a.id]
        assert [r.id for r in await store.list_runs(status=RunStatus.QUEUED)] == [b.id, a.id]
        running = await store.list_runs(task="a", status=RunStatus.RUNNING)
        assert [r.id for r in running] == [c.id]
        assert [r.id for r in await store.list_runs(limit=1)] == [c.id]

    within(db, scenario)


def test_transitions(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        run = await create(store, "add", {"x": 1}, max_attempts=2)
        started = await store.start_attempt(run.id)
        assert started is not None
        assert (started.status, started.attempts, started.finished_at) == ("running", 1, None)
        handled = await store.set_handle(run.id, "local:123:456")
        assert handled is not None and handled.handle == "local:123:456"
        requeued = await store.requeue(run.id, "ValueError: boom")
        assert requeued is not None
        assert (requeued.status, requeued.error, requeued.handle) == (
            "queued", "ValueError: boom", None,
        )  # fmt: skip
        again = await store.start_attempt(run.id)
        assert again is not None and (again.status, again.attempts, again.error) == (
            "running", 2, None,
        )  # fmt: skip
        done = await store.finish(run.id, RunStatus.SUCCEEDED, outputs={"sum": 2})
        assert done is not None
        assert (done.status, done.outputs, done.finished) == ("succeeded", {"sum": 2}, True)
        assert done.finished_at is not None and done.started_at is not None
        assert done.finished_at >= done.started_at

    within(db, scenario)


def test_every_transition_is_a_compare_and_set(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        run = await create(store, "add", {})
        assert await store.requeue(run.id, "x") is None  # queued, not running
        assert await store.set_handle(run.id, "local:1:2") is None
        assert await store.finish(run.id, RunStatus.SUCCEEDED) is None  # expects running
        assert await store.start_attempt(run.id) is not None
        assert await store.start_attempt(run.id) is None  # already running: one winner
        queued = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
        cancelled = await store.finish(run.id, RunStatus.CANCELLED, expect=queued)
        assert cancelled is not None and cancelled.status == "cancelled"
        # A late result of the cancelled attempt is refused and changes nothing.
        assert await store.finish(run.id, RunStatus.SUCCEEDED, outputs=1) is None
        assert await store.requeue(run.id, "late") is None
        assert await store.get(run.id) == cancelled
        assert await store.start_attempt("no-such-run") is None

    within(db, scenario)


def test_finish_refuses_a_state_that_is_not_final(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        run = await create(store, "add", {})
        with pytest.raises(ValueError, match="running is not a final state"):
            await store.finish(run.id, RunStatus.RUNNING)

    within(db, scenario)


def test_unfinished_lists_queued_and_running_oldest_first(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        a, b, c = [await create(store, "t", {}) for _ in range(3)]
        await store.start_attempt(b.id)
        await store.finish(c.id, RunStatus.CANCELLED, expect=frozenset({RunStatus.QUEUED}))
        unfinished = [(r.id, r.status) for r in await store.unfinished()]
        assert unfinished == [(a.id, "queued"), (b.id, "running")]

    within(db, scenario)


def test_a_key_gives_one_run_per_task_within_its_ttl(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        first, same, other_task, no_key = await store.create_many(
            [
                NewRun("hook", {"n": 1}, key="delivery-1", key_ttl=60),
                NewRun("hook", {"n": 2}, key="delivery-1", key_ttl=60),  # in the same batch
                NewRun("other", {"n": 3}, key="delivery-1", key_ttl=60),
                NewRun("hook", {"n": 4}),
            ]
        )
        assert first.created and not same.created and same.run == first.run
        assert other_task.created and no_key.created
        later = (await store.create_many([NewRun("hook", {}, key="delivery-1", key_ttl=60)]))[0]
        assert not later.created and later.run.id == first.run.id
        expired = await store.create_many([NewRun("hook", {}, key="short", key_ttl=0)])
        again = await store.create_many([NewRun("hook", {}, key="short", key_ttl=0)])
        assert expired[0].created and again[0].created
        assert expired[0].run.id != again[0].run.id
        assert len(await store.list_runs()) == 5

    within(db, scenario)


def test_runs_survive_reopening(db: Path) -> None:
    runs = []

    async def first(store: SQLiteRunStore) -> None:
        runs.append(await create(store, "add", {"x": 1}))

    async def second(store: SQLiteRunStore) -> None:
        assert await store.get(runs[0].id) == runs[0]

    within(db, first)
    within(db, second)


_FIRST_RELEASE = """
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
    status TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, log_path TEXT
);
INSERT INTO runs (id, task, status, inputs, outputs, attempts, created_at, finished_at)
VALUES ('old-run-id-1', 'add', 'succeeded', '{"x": 1}', '{"y": 2}', 1, 1.0, 2.0);
"""


def test_a_store_of_the_first_release_is_migrated_in_place(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        connection.executescript(_FIRST_RELEASE)

    async def scenario(store: SQLiteRunStore) -> None:
        old = await store.get("old-run-id-1")
        assert old is not None and (old.status, old.outputs, old.handle) == (
            "succeeded", {"y": 2}, None,
        )  # fmt: skip
        keyed = await store.create_many([NewRun("add", {}, key="k"), NewRun("add", {}, key="k")])
        assert [c.created for c in keyed] == [True, False]

    within(db, scenario)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone() == (VERSION,)


def test_a_store_of_a_newer_engine_is_refused_with_what_to_do(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {VERSION + 1}")
    with pytest.raises(UsageError, match="newer than this engine's .* upgrade engine"):
        SQLiteRunStore(db)


def test_open_store_chooses_by_url(db: Path) -> None:
    store = open_store("", db)
    assert isinstance(store, SQLiteRunStore)
    asyncio.run(store.close())
    with pytest.raises(UsageError, match="run_store 'mysql' is not supported"):
        open_store("mysql://user:hunter2@host/db", db)


def test_run_json_is_the_run_api_json(db: Path) -> None:
    async def scenario(store: SQLiteRunStore) -> None:
        run = await create(store, "add", {"x": 1})
        data = run_json(run, "http://127.0.0.1:9000/")
        assert list(data) == [
            "id", "task", "status", "inputs", "outputs", "error", "attempts", "request_id", "url",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        assert data["url"] == f"http://127.0.0.1:9000/runs/{run.id}"
        assert (data["status"], data["inputs"], data["attempts"]) == ("queued", {"x": 1}, 0)
        assert data["created_at"].endswith("+00:00") and data["started_at"] is None

    within(db, scenario)
