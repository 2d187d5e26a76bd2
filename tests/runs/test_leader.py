"""Control planes sharing one PostgreSQL store: exactly one runs the queue at a time.

Each "control plane" here is a runner over its own store connection, driven by the same
`lead()` a real control plane runs; the executor is a fake that says which runner carried
each attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Bundle,
    Outcome,
    RunStatus,
    TaskUnit,
)
from engine.runs.runner import Runner
from engine.runs.store.postgres import PostgresRunStore
from engine.server import leader
from tests.postgres import PASSWORD, PostgresServer
from tests.runs.conftest import until


class Recording:
    """A task executor that records, per runner, the attempts it carried out."""

    name = "recording"

    def __init__(self, who: str, log: list[tuple[str, str]]) -> None:
        self.who, self.log, self.running = who, log, set[str]()

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        pass

    async def run(self, attempt: Attempt) -> AttemptResult:
        self.running.add(attempt.run_id)
        self.log.append((self.who, attempt.run_id))
        await asyncio.sleep(0.01)
        self.running.discard(attempt.run_id)
        return AttemptResult(Outcome.SUCCEEDED, outputs={"by": self.who})

    def handle(self, run_id: str) -> AttemptHandle | None:
        return AttemptHandle("fake", run_id) if run_id in self.running else None

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        return None

    async def close(self) -> None:
        pass


UNIT = TaskUnit("t", "h", "tasks:t", Bundle("t", "task", "h", Path(".")))


def test_one_control_plane_runs_the_queue_and_another_takes_over(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.new_database()
    log: list[tuple[str, str]] = []
    monkeypatch.setattr(leader, "RETRY", 0.1)
    monkeypatch.setattr(leader, "PICK_UP", 0.05)

    async def plane(who: str) -> tuple[Runner, PostgresRunStore, asyncio.Task[None]]:
        store = await PostgresRunStore.connect(url, password=PASSWORD)
        runner = Runner(store, Recording(who, log), tmp_path / who, retry_delay=0.01)
        await runner.configure([UNIT], {})
        return runner, store, asyncio.create_task(leader.lead(runner, store))

    async def succeeded(store: PostgresRunStore, ids: list[str]) -> bool:
        runs = [await store.get(run_id) for run_id in ids]
        return all(r is not None and r.status == RunStatus.SUCCEEDED for r in runs)

    async def scenario() -> None:
        first, first_store, first_lead = await plane("first")
        await until(lambda: first.leading.is_set())
        second, second_store, second_lead = await plane("second")
        try:
            await asyncio.sleep(0.3)
            assert first.leading.is_set() and not second.leading.is_set()

            stored = [(await second.submit("t", {})).run.id for _ in range(5)]  # the standby's
            await until(lambda: succeeded(second_store, stored))
            assert {who for who, _ in log} == {"first"}  # the leader carried them out

            first_lead.cancel()
            await first.stop()
            await first_store.close()  # its connection, and so its lock, are gone
            await until(lambda: second.leading.is_set(), timeout=10)
            later = (await second.submit("t", {})).run.id
            await until(lambda: succeeded(second_store, [later]))
            assert ("second", later) in log
            assert sorted(r for _, r in log) == sorted([*stored, later])  # each ran once
        finally:
            for lead, runner, store in (
                (first_lead, first, first_store),
                (second_lead, second, second_store),
            ):
                lead.cancel()
                await runner.stop()
                await store.close()

    asyncio.run(scenario())
