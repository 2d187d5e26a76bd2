"""Issue 12, item 1: a task whose code changed runs the new code on its next run, in fresh
workers, while an attempt already running finishes on the old version."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine.backends.base import TaskUnit
from engine.runs.runner import Runner
from tests.runs.conftest import Stores, finished, running, until

VERSION_1 = """
import time

def answer(wait=0):
    time.sleep(wait)
    return "old"
"""

# Another size as well: the file is rewritten within a second of the first, and Python
# trusts a cached .pyc whose source has the same mtime (in seconds) and size.
VERSION_2 = VERSION_1.replace('"old"', '"newer"')


def test_an_edited_handler_runs_its_new_code_in_fresh_workers(
    stores: Stores, project: Path, task: Callable[..., TaskUnit]
) -> None:
    module = project / "versioned.py"
    module.write_text(VERSION_1)

    def unit(version: str) -> TaskUnit:
        return replace(task("answer", hash=version, concurrency=2), handler="versioned:answer")

    async def scenario() -> None:
        async with running(stores, [unit("v1")]) as runner:
            first = await finished(runner, (await runner.submit("answer", {})).run)
            assert first.outputs == "old"
            in_flight = (await runner.submit("answer", {"wait": 1.0})).run
            await until(lambda: _running(runner, in_flight.id))
            module.write_text(VERSION_2)
            await runner.configure([unit("v2")], {})
            after = await finished(runner, (await runner.submit("answer", {})).run)
            assert after.outputs == "newer"
            old = await finished(runner, in_flight)
            assert (old.status, old.outputs) == ("succeeded", "old")  # finished where it began
            again = await finished(runner, (await runner.submit("answer", {})).run)
            assert again.outputs == "newer"

    asyncio.run(scenario())


async def _running(runner: Runner, run_id: str) -> bool:
    run = await runner.get(run_id)
    return run.status == "running" and run.handle is not None
