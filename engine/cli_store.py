"""`engine store`: run-store maintenance (`engine store copy`: SQLite to PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from engine.errors import UsageError


@click.group()
def store() -> None:
    """Run-store maintenance."""


@store.command()
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite store to copy from: a project's .engine/runs.db (or its target's).",
)
@click.option(
    "--to",
    "dest",
    required=True,
    metavar="postgresql://USER@HOST:PORT/DB",
    help="The PostgreSQL store to copy into (created or migrated first).",
)
@click.option(
    "--password-env",
    default="PGPASSWORD",
    show_default=True,
    metavar="VAR",
    help="The environment variable holding the database user's password.",
)
def copy(source: Path, dest: str, password_env: str) -> None:
    """Copy every run of a SQLite store into a PostgreSQL store.

    Runs keep their ids, states, times and outputs. Runs already there are skipped, so the
    copy can be run again. Stop the control plane first, so that no run changes meanwhile.
    """
    if not source.is_file():
        raise UsageError(f"{source}: no such run store (a project's runs are in .engine/runs.db)")
    if not dest.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--to must be a postgresql:// URL, not {dest.partition('://')[0]!r}")
    asyncio.run(_copy(source, dest, os.environ.get(password_env)))


async def _copy(source: Path, dest: str, password: str | None) -> None:
    from engine.runs.store.copy import copy_runs
    from engine.runs.store.postgres import PostgresRunStore, redact
    from engine.runs.store.sqlite import SQLiteRunStore

    def progress(done: int, total: int, copied: int) -> None:
        click.echo(f"{done}/{total} runs read, {copied} copied")

    reader = SQLiteRunStore(source)
    try:
        writer = await PostgresRunStore.connect(dest, password=password)
        try:
            copied, present = await copy_runs(reader, writer, progress=progress)
        finally:
            await writer.close()
    finally:
        await reader.close()
    click.echo(
        f"Copied {copied} runs from {source} to {redact(dest)}"
        + (f"; {present} were there already." if present else ".")
    )
