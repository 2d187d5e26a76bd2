"""Issue 12, item 2: a control plane killed with -9 while a run is in flight.

The worker outlives the control plane (it has its own session). The next control plane
finds it by the handle recorded with the run: it waits for it and takes the result the
worker wrote beside the run's log, so the run ends once, succeeded, never run twice at the
same time. If the worker died too, the run is retried (it had retries left).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.backends.base import AttemptHandle, NewRun, Run
from engine.backends.local.procs import is_ours
from engine.backends.local.workers import kill_group
from engine.runs.store.sqlite import SQLiteRunStore
from tests.runs.conftest import Stores, finished, running
from tests.runs.control_plane import slow_unit

ROOT = Path(__file__).resolve().parents[2]


async def _submit(db: Path, marks: Path) -> Run:
    store = SQLiteRunStore(db)
    item = NewRun("slow", {"marks": str(marks), "seconds": 2.0}, max_attempts=2)
    (created,) = await store.create_many([item], logs_dir=db.parent / "runs")
    await store.close()
    return created.run


async def _stored(db: Path, run_id: str) -> Run | None:
    store = SQLiteRunStore(db)
    run = await store.get(run_id)
    await store.close()
    return run


def _handle(db: Path, run_id: str) -> AttemptHandle | None:
    run = asyncio.run(_stored(db, run_id))
    return AttemptHandle.decode(run.handle) if run and run.handle else None


def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("worker_survives", [True, False], ids=["adopted", "worker-died-too"])
def test_a_run_in_flight_at_a_kill_9_ends_once(
    tmp_path: Path, project: Path, worker_survives: bool
) -> None:
    db, marks = tmp_path / "runs.db", tmp_path / "marks"
    run = asyncio.run(_submit(db, marks))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tests.runs.control_plane", str(tmp_path), str(project), "1"]
    plane = subprocess.Popen(argv, cwd=ROOT, env=env)
    pid = start = 0
    try:
        _until(lambda: marks.exists() and _handle(db, run.id) is not None)
        handle = _handle(db, run.id)
        assert handle is not None and handle.kind == "local"
        pid, start = map(int, handle.ref.split(":"))
    finally:
        plane.send_signal(signal.SIGKILL)
        plane.wait()
    assert is_ours(pid, start), "the worker outlives its control plane"
    if not worker_survives:
        kill_group(pid, start)
        _until(lambda: not is_ours(pid, start))

    async def recover() -> Run:
        task = slow_unit(project, retries=1)
        async with running(Stores(tmp_path), [task]) as runner:
            return await finished(runner, await runner.get(run.id), timeout=30)

    try:
        done = asyncio.run(recover())
    finally:
        kill_group(pid, start)  # in case the test failed with it still running
    lines = marks.read_text().split()
    if worker_survives:
        assert (done.status, done.attempts, done.outputs) == ("succeeded", 1, {"slept": 2.0})
        assert lines == ["start", str(pid), "end", str(pid)]  # one execution, never two
    else:
        assert (done.status, done.attempts, done.outputs) == ("succeeded", 2, {"slept": 2.0})
        assert lines[:2] == ["start", str(pid)] and lines[2] == "start" and lines[3] != str(pid)
        assert lines[4:] == ["end", lines[3]]
    _until(lambda: not is_ours(pid, start))
