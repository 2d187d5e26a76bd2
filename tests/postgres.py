"""A real PostgreSQL server for the tests: Debian's, started once per session.

`initdb` into a private temp folder, `pg_ctl start` on a free loopback port with a private
socket folder (as the `postgres` user when the tests run as root: the server refuses
root), one user with a password; `pg_ctl stop -m fast` by its data folder at the end.
Each test that needs a database asks `postgres.new_database()` for a fresh one; the next
one is already being created meanwhile (CREATE DATABASE takes ~0.3 s here, most of a short
test's setup).

`fsync=off` for the tests: they crash processes, never the machine, and a commit survives
a killed process without an fsync; it makes creating databases quick. bench/runs.py starts
one with `fsync=True`, PostgreSQL's default, so that every acknowledged run is on disk.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

USER = "engine_test"
PASSWORD = "pg-test-password"  # a test server's, on loopback only


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running test server: its loopback port, socket folder and one password user."""

    bin: Path
    folder: Path
    port: int
    fsync: bool = False
    _names: Iterator[int] = field(default_factory=itertools.count)
    _creator: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    _next: Future[str] | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def sockets(self) -> Path:
        return self.folder / "sockets"

    def as_postgres(self, *command: str) -> list[str]:
        """`command` run as the `postgres` user when we are root (the server refuses root)."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def url(self, database: str) -> str:
        """The database's URL, without the password (it is passed apart, as engine does)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """A superuser connection over the private socket (trusted there)."""
        return psycopg.connect(
            host=str(self.sockets), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        )  # fmt: skip

    def new_database(self) -> str:
        """A fresh, empty database owned by the test user; its URL. The one after it is
        created in the background, for the next caller."""
        ready = self._next or self._creator.submit(self._create)
        self._next = self._creator.submit(self._create)
        return ready.result()

    def _create(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {USER}')
        return self.url(name)

    def start(self) -> None:
        self.folder.chmod(0o700)
        self.sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
        subprocess.run(
            self.as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                "--locale=C.UTF-8", "-N",
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets}"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        subprocess.run(
            self.as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                "-o", options, "-w", "-t", "30", "start",
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")

    def stop(self) -> None:
        self._creator.shutdown(cancel_futures=True)  # waits for a creation under way
        subprocess.run(
            self.as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"),
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


NOT_INSTALLED = (
    "PostgreSQL is not installed: `apt-get install postgresql` (Debian's package; CI's "
    ".ci/run installs it)"
)


@contextmanager
def postgres_server(fsync: bool = False) -> Iterator[PostgresServer]:
    """A started server, stopped (by its data folder) and deleted on exit; RuntimeError
    saying why if PostgreSQL is missing or does not start."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError(NOT_INSTALLED)
    # Under /tmp itself, not pytest's per-user folder: the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="engine-pg-"))
    server = PostgresServer(bin_dir, folder, _free_port(), fsync)
    try:
        try:
            server.start()
        except subprocess.CalledProcessError as exc:
            log = folder / "log"
            detail = exc.stderr.decode(errors="replace") + (log.read_text() if log.exists() else "")
            raise RuntimeError(f"PostgreSQL did not start: {detail}") from None
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL, started once for the session and stopped by its data folder."""
    if _bin_dir() is None:
        pytest.fail(NOT_INSTALLED)
    with postgres_server() as server:
        yield server
