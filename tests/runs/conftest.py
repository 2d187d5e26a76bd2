"""Fixtures for the run tests: a project folder with small task modules, and runners over it."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.runs.inputs import input_schema
from engine.runs.runner import Runner, TaskConfig
from engine.runs.store import Run, RunStore

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
'''

HELPER = """
def double(x):
    return 2 * x
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A spec folder holding `tasks.py` and its sibling `helper.py`."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tasks.py").write_text(textwrap.dedent(TASKS))
    (folder / "helper.py").write_text(textwrap.dedent(HELPER))
    return folder


@pytest.fixture
def task(project: Path) -> Callable[..., TaskConfig]:
    """Factory: the TaskConfig of `tasks:<function>` named `name`, in the project folder."""

    def make(name: str, function: str | None = None, **options: Any) -> TaskConfig:
        inputs = options.pop("inputs", None)
        env = {"PATH": os.environ.get("PATH", ""), **options.pop("env", {})}
        if inputs is not None:
            options["input_schema"] = input_schema(inputs)
        options.setdefault("concurrency", 1)
        return TaskConfig(name, f"tasks:{function or name}", env, project, **options)

    return make


@asynccontextmanager
async def running(
    store_path: Path, tasks: list[TaskConfig], **options: Any
) -> AsyncIterator[Runner]:
    """A configured, started runner over the store at `store_path`; stopped on exit."""
    store = RunStore(store_path)
    runner = Runner(store, store_path.parent / "runs", "http://cp", **options)
    try:
        await runner.configure(tasks)
        await runner.start()
        yield runner
    finally:
        await runner.stop()
        store.close()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `predicate()` holds; fails the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def finished(runner: Runner, run: Run, timeout: float = 20.0) -> Run:
    """The run once it is in a final state (fails the test if it takes over `timeout` s)."""
    result = await runner.wait(run.id, timeout)
    assert result.finished, result
    return result
