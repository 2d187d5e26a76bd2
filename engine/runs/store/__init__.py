"""The run store: where runs live, behind `engine.backends.base.RunStore`.

    store = open_store("", layout.dir / "runs.db")        # SQLite (the default)
    store = open_store("postgresql://...", path)           # PostgreSQL (engine.runs.store.postgres)

Both give the same guarantees: a run is committed before the call that creates or changes
it returns, and every state change is a compare-and-set that returns the changed run, or
None when someone else moved it first.
"""

from __future__ import annotations

import importlib
import secrets
import string
from pathlib import Path

from engine.backends.base import FINAL, Created, NewRun, Run, RunStatus, RunStore
from engine.errors import UsageError

__all__ = ["FINAL", "Created", "NewRun", "Run", "RunStatus", "RunStore", "new_run_id", "open_store"]


_ID_ALPHABET = string.ascii_letters + string.digits


def new_run_id() -> str:
    """A short, unguessable run id: 12 letters and digits (71 bits).

    No `-` or `_`: an id that began with `-` would read as an option on a command line
    (`engine run-logs -g99…`), and `token_urlsafe` makes one in 32.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def open_store(url: str, path: Path, password: str | None = None) -> RunStore:
    """The run store at `url`: SQLite at `path` when `url` is empty, else PostgreSQL (with
    `password`, kept out of the URL)."""
    if not url:
        from engine.runs.store.sqlite import SQLiteRunStore

        return SQLiteRunStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            postgres = importlib.import_module("engine.runs.store.postgres")
        except ModuleNotFoundError as exc:
            raise UsageError(
                f"a postgresql:// run_store needs psycopg ({exc}); install it with: "
                "pip install 'engine[postgres]', or leave `run_store:` out for SQLite"
            ) from exc
        store: RunStore = postgres.PostgresRunStore(url, password=password)
        return store
    scheme = url.partition("://")[0] or url
    raise UsageError(
        f"run_store {scheme!r} is not supported; leave `run_store:` out for SQLite or give "
        "a postgresql:// URL"
    )
