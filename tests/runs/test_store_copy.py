"""Copying runs into PostgreSQL: `copy_runs`, and `engine store copy` from a SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backends.base import NewRun, Run, RunStatus, RunStore
from engine.runs.store.copy import copy_runs
from engine.runs.store.postgres import PostgresRunStore
from tests.postgres import PASSWORD, PostgresServer


async def some_history(store: RunStore) -> list[Run]:
    """Five runs in every kind of state, with outputs, errors, handles and retries."""
    created = await store.create_many(
        [NewRun("add", {"x": i}, max_attempts=2) for i in range(5)], logs_dir=Path("/logs")
    )
    a, b, c, d, _ = (c.run.id for c in created)
    for run_id in (a, b, c, d):
        await store.start_attempt(run_id)
    await store.finish(a, RunStatus.SUCCEEDED, outputs={"sum": 1, "list": [1, {"k": None}]})
    await store.requeue(b, "RuntimeError: lost")
    await store.set_handle(c, "local:42:1700000000")
    await store.finish(d, RunStatus.FAILED, error="ValueError: boom")
    return list(reversed(await store.list_runs()))


def test_copy_runs_keeps_every_field_and_copies_nothing_twice(postgres: PostgresServer) -> None:
    source_url, dest_url = postgres.new_database(), postgres.new_database()

    async def main() -> None:
        source = await PostgresRunStore.connect(source_url, password=PASSWORD)
        dest = await PostgresRunStore.connect(dest_url, password=PASSWORD)
        try:
            history = await some_history(source)
            seen: list[tuple[int, int, int]] = []
            assert await copy_runs(source, dest, batch=2, progress=lambda *p: seen.append(p)) == (
                5,
                0,
            )
            assert seen == [(2, 5, 2), (4, 5, 4), (5, 5, 5)]
            assert list(reversed(await dest.list_runs())) == history
            assert [r.id for r in await dest.unfinished()] == [r.id for r in history[1:3]] + [
                history[4].id
            ]
            assert await copy_runs(source, dest) == (0, 5)
            assert len(await dest.list_runs()) == 5
            # The copy is a live store: its runs move on.
            assert await dest.start_attempt(history[4].id) is not None
        finally:
            await source.close()
            await dest.close()

    asyncio.run(main())


def test_engine_store_copy_from_a_sqlite_file(postgres: PostgresServer, tmp_path: Path) -> None:
    sqlite = pytest.importorskip(
        "engine.runs.store.sqlite", reason="SQLiteRunStore is not merged yet (runs-seam)"
    )
    db = tmp_path / ".engine" / "runs.db"
    dest_url = postgres.new_database()

    async def fill() -> list[Run]:
        store = sqlite.SQLiteRunStore(db)
        try:
            return await some_history(store)
        finally:
            await store.close()

    history = asyncio.run(fill())
    command = [sys.executable, "-m", "engine.cli", "store", "copy", "--from", str(db)]
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    first = subprocess.run(
        [*command, "--to", dest_url], env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "5/5 runs read, 5 copied" in first.stdout
    assert f"Copied 5 runs from {db} to {dest_url}." in first.stdout
    again = subprocess.run(
        [*command, "--to", dest_url], env=env, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert "Copied 0 runs" in again.stdout and "5 were there already" in again.stdout

    async def read() -> list[Run]:
        store = await PostgresRunStore.connect(dest_url, password=PASSWORD)
        try:
            return list(reversed(await store.list_runs()))
        finally:
            await store.close()

    assert asyncio.run(read()) == history

    wrong = subprocess.run(
        [*command, "--to", dest_url], env={**env, "PGPASSWORD": "nope"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert "refused the credentials" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = subprocess.run(
        [*command[:-1], str(tmp_path / "none.db"), "--to", dest_url],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no such run store" in missing.stderr
