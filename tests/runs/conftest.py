"""Fixtures for the run tests: a project folder with small task modules, the run store a test
runs on (SQLite, and PostgreSQL from the session's server), and runners over them."""

from __future__ import annotations

import asyncio
import inspect
import os
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.backends.base import Bundle, ProjectContext, TaskUnit
from engine.backends.local.tasks import LocalTaskExecutor
from engine.runs.inputs import input_schema
from engine.runs.runner import Runner
from engine.runs.store import Run, RunStore
from engine.runs.store.sqlite import SQLiteRunStore
from tests.postgres import PASSWORD, PostgresServer

TASKS = '''
import asyncio, os, pathlib, sys, time

import helper


def add(x, y=1):
    return {"sum": x + y}


async def add_async(x):
    await asyncio.sleep(0)
    return {"sum": x + 1}


def fail(message="boom"):
    raise ValueError(message)


def count_and_fail(counter):
    with open(counter, "a") as f:
        f.write("x")
    raise RuntimeError("again")


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def talk(text):
    print("out:", text)
    print("err:", text, file=sys.stderr)
    os.system("echo from-child")
    return text


def env(name):
    return os.environ.get(name)


def sibling(x):
    return helper.double(x)


def _write_pid(pidfile):
    tmp = pidfile + ".tmp"
    pathlib.Path(tmp).write_text(str(os.getpid()))
    os.rename(tmp, pidfile)


def die_once(marker, pidfile):
    """Hang on the first attempt (the test kills the worker); answer on the next."""
    if not os.path.exists(marker):
        pathlib.Path(marker).touch()
        _write_pid(pidfile)
        time.sleep(60)
    return "second"


def hang(pidfile):
    _write_pid(pidfile)
    time.sleep(60)


def not_json():
    return {1, 2}


def noisy(kib):
    line = "x" * 1023
    for _ in range(kib):
        print(line)
    return kib


def slow(marks, seconds):
    with open(marks, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    time.sleep(seconds)
    with open(marks, "a") as f:
        f.write(f"end {os.getpid()}\\n")
    return {"slept": seconds}
'''

HELPER = """
def double(x):
    return 2 * x
"""


@dataclass(frozen=True)
class Stores:
    """Where one test's runs live: a SQLite file in `folder`, or the PostgreSQL database at
    `url`. Each `open()` is another store over the same runs (another control plane's)."""

    folder: Path
    url: str = ""

    @property
    def kind(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def open(self) -> RunStore:
        """A new store over this test's runs (PostgreSQL's connects on first use)."""
        if not self.url:
            return SQLiteRunStore(self.folder / "runs.db")
        from engine.runs.store.postgres import PostgresRunStore

        return PostgresRunStore(self.url, password=PASSWORD)


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """The test's run store, once on SQLite and once on a fresh PostgreSQL database of the
    session's server (a database per test: nothing is shared between tests)."""
    if request.param == "sqlite":
        return Stores(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return Stores(tmp_path, server.new_database())


sqlite_only = pytest.mark.parametrize("stores", ["sqlite"], indirect=True)
"""For a test of something no store takes part in (auth, logs, a task's environment): run
on SQLite only, so the PostgreSQL runs cost time only where they can find something."""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A spec folder holding `tasks.py` and its sibling `helper.py`."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tasks.py").write_text(textwrap.dedent(TASKS))
    (folder / "helper.py").write_text(textwrap.dedent(HELPER))
    return folder


@pytest.fixture
def task(project: Path) -> Callable[..., TaskUnit]:
    """Factory: the TaskUnit of `tasks:<function>` named `name`, in the project folder."""

    def make(name: str, function: str | None = None, **options: Any) -> TaskUnit:
        inputs = options.pop("inputs", None)
        if inputs is not None:
            options["input_schema"] = input_schema(inputs)
        options.setdefault("concurrency", 1)
        version = options.pop("hash", "v1")
        bundle = Bundle(name, "task", version, project, ("tasks.py", "helper.py"))
        return TaskUnit(name, version, f"tasks:{function or name}", bundle, **options)

    return make


def executor(folder: Path, **options: Any) -> LocalTaskExecutor:
    """A local executor for the project in `folder` (its API at http://cp)."""
    context = ProjectContext("test", folder, "http://cp", "test-token")
    base = {"PATH": os.environ.get("PATH", "")}
    return LocalTaskExecutor(context, base, folder / "runs", folder / "secrets", **options)


@asynccontextmanager
async def running(
    stores: Stores, tasks: list[TaskUnit], *, log_cap: int | None = None, **options: Any
) -> AsyncIterator[Runner]:
    """A configured, started runner over a new store of `stores`, running its tasks in
    real local workers (their logs and state in `stores.folder`); stopped on exit."""
    store = stores.open()
    caps = {} if log_cap is None else {"log_cap": log_cap}
    workers = executor(stores.folder, **caps)
    runner = Runner(store, workers, stores.folder / "runs", "http://cp", **options)
    try:
        await runner.configure(tasks, {})
        await runner.start()
        yield runner
    finally:
        await runner.stop()
        await workers.close()
        await store.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until `predicate()` (or what it returns, if awaitable) holds; fails the test
    after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not await _value(predicate()):
            await asyncio.sleep(0.02)


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def finished(runner: Runner, run: Run, timeout: float = 20.0) -> Run:
    """The run once it is in a final state (fails the test if it takes over `timeout` s)."""
    result = await runner.wait(run.id, timeout)
    assert result.finished, result
    return result
