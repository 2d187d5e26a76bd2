"""Issue 12, item 15: a run's log is capped (its range reads: test_api.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from engine.backends.base import TaskUnit
from tests.runs.conftest import Stores, finished, running

CAP = 64 * 1024


def test_a_run_log_stops_at_its_cap_and_says_so(
    tmp_path: Path, task: Callable[..., TaskUnit]
) -> None:
    async def scenario() -> None:
        async with running(Stores(tmp_path), [task("noisy")], log_cap=CAP) as runner:
            run = await finished(runner, (await runner.submit("noisy", {"kib": 1024})).run)
            assert (run.status, run.outputs) == ("succeeded", 1024)  # 1 MiB printed
            log = Path(run.log_path or "").read_bytes()
            kept, _, note = log.rpartition(b"\n[engine] ")
            assert len(kept) == CAP
            assert set(kept.replace(b"\n", b"")) == {ord("x")}
            assert (
                note
                == (
                    f"this run's log reached its cap of {CAP} bytes; the rest of its output is"
                    " dropped\n"
                ).encode()
            )
            small = await finished(runner, (await runner.submit("noisy", {"kib": 2})).run)
            assert Path(small.log_path or "").stat().st_size == 2048  # under the cap: all

    asyncio.run(scenario())
