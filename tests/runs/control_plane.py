"""A stand-in control plane for the kill -9 tests: a runner over a project's store and real
local workers, serving task `slow` until it is killed.

    python -m tests.runs.control_plane FOLDER PROJECT RETRIES
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from engine.backends.base import Bundle, TaskUnit
from engine.runs.runner import Runner
from engine.runs.store.sqlite import SQLiteRunStore
from tests.runs.conftest import executor


def slow_unit(project: Path, retries: int) -> TaskUnit:
    """Task `slow` of the test project's `tasks.py`."""
    bundle = Bundle("slow", "task", "v1", project, ("tasks.py",))
    return replace(TaskUnit("slow", "v1", "tasks:slow", bundle), retries=retries, concurrency=1)


async def serve(folder: Path, project: Path, retries: int) -> None:
    store = SQLiteRunStore(folder / "runs.db")
    runner = Runner(store, executor(folder), folder / "runs", "http://cp")
    await runner.configure([slow_unit(project, retries)], {})
    await runner.start()
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    folder, project, retries = sys.argv[1:4]
    asyncio.run(serve(Path(folder), Path(project), int(retries)))
