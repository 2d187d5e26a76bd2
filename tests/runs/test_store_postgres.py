"""What only the PostgreSQL store does: its errors, its schema versions, the runner lock."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psycopg
import pytest

from engine.backends.base import NewRun
from engine.runs.store import open_store
from engine.runs.store.postgres import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    PostgresRunStore,
    RunStoreError,
    redact,
)
from tests.postgres import PASSWORD, USER, PostgresServer


def connect(url: str, password: str | None = PASSWORD) -> PostgresRunStore:
    async def main() -> PostgresRunStore:
        store = await PostgresRunStore.connect(url, password=password)
        await store.close()
        return store

    return asyncio.run(main())


def test_redact_drops_only_the_password() -> None:
    assert redact("postgresql://u:p%40ss@db.example:5433/runs?sslmode=require") == (
        "postgresql://u@db.example:5433/runs?sslmode=require"
    )
    assert redact("postgresql://u@[::1]/runs") == "postgresql://u@[::1]/runs"
    assert redact("postgresql://u:pw@[::1]:5432/runs") == "postgresql://u@[::1]:5432/runs"


def test_an_unreachable_server_is_named_with_what_to_do() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        url = f"postgresql://{USER}:hunter2@127.0.0.1:{port}/runs"
        with pytest.raises(RunStoreError) as caught:
            connect(url, password=None)
    message = str(caught.value)
    assert f"postgresql://{USER}@127.0.0.1:{port}/runs is unreachable" in message
    assert "start PostgreSQL" in message
    assert "hunter2" not in message


def test_bad_credentials_say_which_secret_to_check(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    with pytest.raises(RunStoreError, match="refused the credentials") as caught:
        connect(url, password="wrong-password")
    assert url in str(caught.value)
    assert "run_store_password" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    with pytest.raises(RunStoreError, match="refused the credentials"):
        connect(url, password=None)


def test_a_missing_database_says_to_create_it(postgres: PostgresServer) -> None:
    url = postgres.url("no_such_database")
    with pytest.raises(RunStoreError, match="database does not exist: create it"):
        connect(url)


def test_the_schema_is_created_once_by_concurrent_control_planes(postgres: PostgresServer) -> None:
    url = postgres.new_database()

    async def main() -> None:
        stores = await asyncio.gather(
            *(PostgresRunStore.connect(url, password=PASSWORD) for _ in range(4))
        )
        for store in stores:
            await store.close()

    asyncio.run(main())
    connect(url)  # and reopening migrates nothing
    with psycopg.connect(url, password=PASSWORD) as conn:
        assert conn.execute("SELECT version FROM engine_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_a_version_1_database_is_migrated_keeping_its_runs(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    with psycopg.connect(url, password=PASSWORD) as conn:
        conn.execute(_MIGRATIONS[0].encode())
        conn.execute("CREATE TABLE engine_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO engine_schema VALUES (1)")
        conn.execute(
            "INSERT INTO runs (id, task, status, inputs, created_at)"
            " VALUES ('old', 'add', 'succeeded', '{}', 1.0)"
        )

    async def main() -> None:
        store = await PostgresRunStore.connect(url, password=PASSWORD)
        try:
            old = await store.get("old")
            assert old is not None and (old.status, old.request_id) == ("succeeded", None)
            [new] = await store.create_many([NewRun("add", {}, request_id="req-1")])
            assert new.run.request_id == "req-1"
            again = await store.get(new.run.id)
            assert again is not None and again.request_id == "req-1"
        finally:
            await store.close()

    asyncio.run(main())
    with psycopg.connect(url, password=PASSWORD) as conn:
        assert conn.execute("SELECT version FROM engine_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_a_database_of_a_newer_schema_is_refused_untouched(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    connect(url)
    with psycopg.connect(url, password=PASSWORD) as conn:
        conn.execute("UPDATE engine_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(RunStoreError) as caught:
        connect(url)
    message = str(caught.value)
    assert f"{url} has schema version {SCHEMA_VERSION + 1}, newer than this engine's" in message
    assert "upgrade engine" in message
    with psycopg.connect(url, password=PASSWORD) as conn:
        assert conn.execute("SELECT version FROM engine_schema").fetchone() == (SCHEMA_VERSION + 1,)


def test_one_runner_lock_per_database_released_on_close(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    elsewhere = postgres.new_database()

    async def main() -> None:
        first, second, third = [
            await PostgresRunStore.connect(u, password=PASSWORD) for u in (url, url, elsewhere)
        ]
        try:
            assert await first.acquire_runner_lock()
            assert await first.acquire_runner_lock()  # still held: asking again is cheap
            assert not await second.acquire_runner_lock()
            assert await third.acquire_runner_lock()  # another database, another queue
            await first.close()
            assert await second.acquire_runner_lock()
        finally:
            for store in (first, second, third):
                await store.close()

    asyncio.run(main())


def test_a_lost_lock_connection_hands_the_lock_over(postgres: PostgresServer) -> None:
    url = postgres.new_database()

    async def main() -> None:
        first = await PostgresRunStore.connect(url, password=PASSWORD)
        second = await PostgresRunStore.connect(url, password=PASSWORD)
        try:
            assert await first.acquire_runner_lock()
            with postgres.admin() as admin:  # as when the network drops the lock's session
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted"
                )
            await asyncio.sleep(0.1)
            assert await second.acquire_runner_lock()
            assert not await first.acquire_runner_lock()  # it learns it lost the lock
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_open_store_builds_it_without_io_and_its_first_call_opens_it(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.new_database()
    store = open_store(url, tmp_path / "runs.db")
    assert isinstance(store, PostgresRunStore) and repr(store) == f"PostgresRunStore({url!r})"
    assert not (tmp_path / "runs.db").exists()
    unreachable = open_store(f"postgresql://{USER}@127.0.0.1:1/runs", tmp_path / "runs.db")

    async def main() -> None:
        with pytest.raises(RunStoreError, match="unreachable"):
            await unreachable.list_runs()
        try:
            [created] = await store.create_many([NewRun("add", {})])
            assert await store.get(created.run.id) == created.run
        finally:
            await store.close()
            await unreachable.close()

    # open_store passes no password yet: libpq's own variable stands in for the secret.
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    asyncio.run(main())
