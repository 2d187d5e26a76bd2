"""What the engine started, kept in `.engine/`: the state database, control-plane file, lock.

* `State` — `.engine/state.db` (SQLite, WAL): apps, tasks and the history of applies.
* `ControlPlaneInfo` — `.engine/control-plane.json` (mode 0600): url, pid, start time, token.
* `ApplyLock` — `.engine/lock`, an `fcntl.flock` held by the applying process.

The state never holds a secret value: records have no field for one, and an app's
`spec_json` is its non-secret config only (secrets appear there, if at all, as names or
hashes). The control-plane token is the one credential in `.engine/`, in a 0600 file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sqlite3
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError, StateError
from engine.layout import private_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    port INTEGER,
    pid INTEGER,
    start_time INTEGER,
    state TEXT NOT NULL,
    restarts INTEGER NOT NULL DEFAULT 0,
    url TEXT,
    spec_json TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    parts TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS applies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    spec_hash TEXT NOT NULL,
    result TEXT,
    summary TEXT NOT NULL DEFAULT ''
);
"""
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class AppRecord:
    """One app as the state knows it; `pid` and `start_time` identify its process."""

    name: str
    hash: str
    state: str
    port: int | None = None
    pid: int | None = None
    start_time: int | None = None
    restarts: int = 0
    url: str | None = None
    spec_json: str = "{}"
    updated_at: float = 0.0


@dataclass(frozen=True)
class ApplyRecord:
    """One `engine apply`: when, for which spec hash, and how it ended (None while running)."""

    id: int
    started_at: float
    finished_at: float | None
    spec_hash: str
    result: str | None
    summary: str


class State:
    """The state database `<dir>/state.db` (`dir` is the project's `.engine/` folder)."""

    def __init__(self, dir: Path) -> None:
        private_dir(dir)
        self.path = dir / "state.db"
        # SQLite creates the file as the umask allows (0644) and its -wal and -shm files
        # with the database's mode: create it 0600 first, so all three are private.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            with self._lock:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateError(
                f"cannot read the state database {self.path} ({exc}); if it is damaged, "
                "run `engine destroy` (it finds the project's processes without the state), "
                "move the file aside and run `engine apply` again"
            ) from exc

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).lastrowid or 0

    # apps

    def put_app(self, record: AppRecord) -> AppRecord:
        """Insert or replace an app's record; returns it with `updated_at` set to now."""
        record = _replace(record, updated_at=time.time())
        fields = asdict(record)
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        self._execute(
            f"INSERT OR REPLACE INTO apps ({names}) VALUES ({marks})", tuple(fields.values())
        )
        return record

    def get_app(self, name: str) -> AppRecord | None:
        """The app's record, or None."""
        rows = self._query("SELECT * FROM apps WHERE name = ?", (name,))
        return AppRecord(**dict(rows[0])) if rows else None

    def apps(self) -> list[AppRecord]:
        """Every app's record, by name."""
        return [AppRecord(**dict(r)) for r in self._query("SELECT * FROM apps ORDER BY name")]

    def delete_app(self, name: str) -> None:
        """Forget an app (once it is stopped)."""
        self._execute("DELETE FROM apps WHERE name = ?", (name,))

    # tasks

    def put_task(self, name: str, hash: str) -> None:
        """Record a task's content hash."""
        self._execute("INSERT OR REPLACE INTO tasks (name, hash) VALUES (?, ?)", (name, hash))

    def tasks(self) -> dict[str, str]:
        """Task name -> content hash."""
        return {r["name"]: r["hash"] for r in self._query("SELECT * FROM tasks ORDER BY name")}

    def delete_task(self, name: str) -> None:
        """Forget a task."""
        self._execute("DELETE FROM tasks WHERE name = ?", (name,))

    # versions: what each applied hash is made of, so a plan can say what changed

    def put_parts(self, kind: str, name: str, hash: str, parts: dict[str, str]) -> None:
        """Record the parts (non-secret hashes) of the version `hash` of app or task `name`."""
        sql = "INSERT OR REPLACE INTO versions (kind, name, hash, parts) VALUES (?, ?, ?, ?)"
        self._execute(sql, (kind, name, hash, json.dumps(parts, sort_keys=True)))

    def parts(self, kind: str, name: str, hash: str) -> dict[str, str] | None:
        """The parts recorded for version `hash`, or None if another version was recorded."""
        sql = "SELECT parts FROM versions WHERE kind = ? AND name = ? AND hash = ?"
        rows = self._query(sql, (kind, name, hash))
        return json.loads(rows[0]["parts"]) if rows else None

    # applies

    def begin_apply(self, spec_hash: str) -> int:
        """Record the start of an apply; returns its id."""
        sql = "INSERT INTO applies (started_at, spec_hash) VALUES (?, ?)"
        return self._execute(sql, (time.time(), spec_hash))

    def finish_apply(self, id: int, result: str, summary: str = "") -> None:
        """Record how apply `id` ended (e.g. result "ok" or "failed", and a one-line summary)."""
        sql = "UPDATE applies SET finished_at = ?, result = ?, summary = ? WHERE id = ?"
        self._execute(sql, (time.time(), result, summary, id))

    def applies(self, limit: int = 20) -> list[ApplyRecord]:
        """The latest applies, newest first."""
        rows = self._query("SELECT * FROM applies ORDER BY id DESC LIMIT ?", (limit,))
        return [ApplyRecord(**dict(r)) for r in rows]


def _replace(record: AppRecord, **changes: Any) -> AppRecord:
    return AppRecord(**{**asdict(record), **changes})


@dataclass(frozen=True)
class ControlPlaneInfo:
    """How to reach the project's control plane: `<dir>/control-plane.json`, mode 0600."""

    url: str
    pid: int
    start_time: int
    token: str

    FILENAME = "control-plane.json"

    def write(self, dir: Path) -> Path:
        """Write the file atomically, readable only by the user."""
        path = dir / self.FILENAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(asdict(self), f)
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, dir: Path) -> ControlPlaneInfo | None:
        """The recorded control plane, or None if there is no (readable) file."""
        try:
            data = json.loads((dir / cls.FILENAME).read_text())
            return cls(
                str(data["url"]), int(data["pid"]), int(data["start_time"]), str(data["token"])
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def remove(cls, dir: Path) -> None:
        """Delete the file, if there is one."""
        (dir / cls.FILENAME).unlink(missing_ok=True)


class LockHeldError(EngineError):
    """Raised when another engine command holds the project's lock."""

    def __init__(self, path: Path, holder: dict[str, Any] | None) -> None:
        self.holder = holder
        if holder:
            who = f"pid {holder.get('pid')} ({holder.get('command')}, since {holder.get('since')})"
        else:
            who = "another process"
        super().__init__(f"{path} is held by {who}; try again once it has finished")


class ApplyLock:
    """An exclusive `flock` on `<dir>/lock`; the holder's pid and command are written inside.

    The kernel drops the lock when its holder exits, however it exits, so a lock left by a
    killed process is free again at once.
    """

    def __init__(self, dir: Path, command: str | None = None) -> None:
        dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = dir / "lock"
        self.command = command if command is not None else shlex.join(sys.argv)
        self._fd: int | None = None

    def acquire(self, wait: bool = False, timeout: float | None = None) -> None:
        """Take the lock; if it is held, wait (up to `timeout` s) or raise LockHeldError."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    holder = self.holder()
                    os.close(fd)
                    raise LockHeldError(self.path, holder) from None
                time.sleep(0.05)
        holder = {"pid": os.getpid(), "command": self.command, "since": _now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Clear the holder and drop the lock."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, as written inside it: {"pid", "command", "since"}, or None."""
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def __enter__(self) -> ApplyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
