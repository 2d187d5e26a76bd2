"""The runner's state machine over an in-memory `TaskExecutor` (no processes: fast).

The fake executor is a stand-in only for where attempts run; the store is the real SQLite
store and the real PostgreSQL one (each test runs on both), so every transition the runner
makes is the real compare-and-set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Bundle,
    NewRun,
    Outcome,
    RunStatus,
    TaskUnit,
)
from engine.runs.runner import WORKER_LOST, Runner
from tests.runs.conftest import Stores, until

Behaviour = Callable[[Attempt], Any]
"""What the fake does for an attempt: returns an AttemptResult, or an awaitable of one."""


class FakeExecutor:
    """Carries out attempts by calling `behaviour`; records what it was asked."""

    name = "fake"

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.attempts: list[Attempt] = []
        self.cancelled: list[str] = []
        self.running: set[str] = set()
        self.reattached: list[tuple[str, AttemptHandle]] = []
        self.adopt: Callable[[Attempt], Any] = lambda attempt: None
        self.configured: list[tuple[str, ...]] = []

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        self.configured.append(tuple(unit.name for unit in units))

    async def run(self, attempt: Attempt) -> AttemptResult:
        self.attempts.append(attempt)
        self.running.add(attempt.run_id)
        try:
            await asyncio.sleep(0)  # the attempt begins after the handle is reported
            result = self.behaviour(attempt)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except asyncio.CancelledError:
            self.cancelled.append(attempt.run_id)
            raise
        finally:
            self.running.discard(attempt.run_id)

    def handle(self, run_id: str) -> AttemptHandle | None:
        return AttemptHandle("fake", run_id) if run_id in self.running else None

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        self.reattached.append((attempt.run_id, handle))
        result = self.adopt(attempt)
        return await result if asyncio.iscoroutine(result) else result

    async def close(self) -> None:
        pass


def unit(name: str = "t", **options: Any) -> TaskUnit:
    bundle = Bundle(name, "task", "h", Path("."))
    return TaskUnit(name, "h", f"tasks:{name}", bundle, **options)


def ok(attempt: Attempt) -> AttemptResult:
    return AttemptResult(Outcome.SUCCEEDED, outputs={"echo": dict(attempt.inputs)})


@asynccontextmanager
async def runner_over(
    stores: Stores, fake: FakeExecutor, units: list[TaskUnit], *, start: bool = True
) -> AsyncIterator[Runner]:
    store = stores.open()
    runner = Runner(store, fake, stores.folder / "runs", "http://cp", retry_delay=0.01)
    try:
        await runner.configure(units, {})
        if start:
            await runner.start()
        yield runner
    finally:
        await runner.stop()
        await store.close()


def test_a_success_is_stored_with_its_outputs_and_handle(stores: Stores) -> None:
    store = stores.open()
    handles: list[str | None] = []

    async def behaviour(attempt: Attempt) -> AttemptResult:
        run = await store.get(attempt.run_id)
        handles.append(run.handle if run else None)  # recorded before the attempt begins
        return ok(attempt)

    async def scenario() -> None:
        runner = Runner(store, FakeExecutor(behaviour), stores.folder / "runs", "http://cp")
        await runner.configure([unit()], {})
        await runner.start()
        try:
            created = await runner.submit("t", {"x": 1})
            run = await runner.wait(created.run.id, 5)
            assert (run.status, run.outputs, run.attempts) == ("succeeded", {"echo": {"x": 1}}, 1)
            assert handles == [f"fake:{run.id}"]
        finally:
            await runner.stop()
            await store.close()

    asyncio.run(scenario())


def test_failures_are_retried_with_back_off_then_fail(stores: Stores) -> None:
    fake = FakeExecutor(lambda a: AttemptResult(Outcome.FAILED, error=f"E: {a.number}"))

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit(retries=2)]) as runner:
            created = await runner.submit("t", {})
            run = await runner.wait(created.run.id, 5)
            assert (run.status, run.attempts, run.error) == ("failed", 3, "E: 3")

    asyncio.run(scenario())
    assert [a.number for a in fake.attempts] == [1, 2, 3]


def test_a_lost_attempt_is_retried_and_then_succeeds(stores: Stores) -> None:
    def behaviour(attempt: Attempt) -> AttemptResult:
        if attempt.number == 1:
            return AttemptResult(Outcome.LOST, error="worker lost (killed by SIGKILL)")
        return ok(attempt)

    async def scenario() -> None:
        async with runner_over(stores, FakeExecutor(behaviour), [unit(retries=1)]) as runner:
            run = await runner.wait((await runner.submit("t", {})).run.id, 5)
            assert (run.status, run.attempts, run.error) == ("succeeded", 2, None)

    asyncio.run(scenario())


def test_a_timeout_cancels_the_attempt_and_is_not_retried(stores: Stores) -> None:
    async def forever(attempt: Attempt) -> AttemptResult:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    fake = FakeExecutor(forever)

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit(timeout=0.05, retries=3)]) as runner:
            run = await runner.wait((await runner.submit("t", {})).run.id, 5)
            assert (run.status, run.error, run.attempts) == (
                "timed_out", "timed out after 0.05 s", 1,
            )  # fmt: skip
            assert fake.cancelled == [run.id]

    asyncio.run(scenario())


def test_cancel_cancels_the_attempt_and_its_late_result_is_refused(stores: Stores) -> None:
    release = asyncio.Event()

    async def slow(attempt: Attempt) -> AttemptResult:
        try:
            await release.wait()
        finally:
            await asyncio.sleep(0)
        return ok(attempt)

    fake = FakeExecutor(slow)

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit(concurrency=1)]) as runner:
            busy = (await runner.submit("t", {})).run
            waiting = (await runner.submit("t", {})).run
            await until(lambda: busy.id in fake.running)
            cancelled = await runner.cancel(waiting.id)
            assert (cancelled.status, cancelled.attempts) == ("cancelled", 0)
            cancelled = await runner.cancel(busy.id)
            assert (cancelled.status, cancelled.attempts) == ("cancelled", 1)
            await until(lambda: fake.cancelled == [busy.id])
            assert (await runner.cancel(busy.id)).status == "cancelled"
            release.set()
            await asyncio.sleep(0.05)
            assert (await runner.get(busy.id)).status == "cancelled"
            assert [a.run_id for a in fake.attempts] == [busy.id]  # the queued one never ran

    asyncio.run(scenario())


def test_a_refused_compare_and_set_leaves_the_run_to_whoever_moved_it(stores: Stores) -> None:
    """Another writer (a second control plane, an operator) finishes the run while the
    attempt is in flight: the attempt's result is refused and changes nothing."""
    release = asyncio.Event()

    async def slow(attempt: Attempt) -> AttemptResult:
        await release.wait()
        return AttemptResult(Outcome.FAILED, error="late")

    async def scenario() -> None:
        async with runner_over(stores, FakeExecutor(slow), [unit(retries=5)]) as runner:
            run = (await runner.submit("t", {})).run
            await until(lambda: _status_is(runner, run.id, RunStatus.RUNNING))
            other = await runner.store.finish(run.id, RunStatus.SUCCEEDED, outputs="theirs")
            assert other is not None
            release.set()
            await asyncio.sleep(0.05)
            final = await runner.get(run.id)
            assert (final.status, final.outputs, final.attempts) == ("succeeded", "theirs", 1)

    asyncio.run(scenario())


def test_an_executor_that_raises_loses_the_attempt_not_the_run(stores: Stores) -> None:
    def broken(attempt: Attempt) -> AttemptResult:
        if attempt.number == 1:
            raise RuntimeError("executor bug")
        return ok(attempt)

    async def scenario() -> None:
        async with runner_over(stores, FakeExecutor(broken), [unit(retries=1)]) as runner:
            run = await runner.wait((await runner.submit("t", {})).run.id, 5)
            assert (run.status, run.attempts) == ("succeeded", 2)

    asyncio.run(scenario())


def test_concurrency_bounds_attempts_in_flight(stores: Stores) -> None:
    peak = 0

    async def behaviour(attempt: Attempt) -> AttemptResult:
        nonlocal peak
        peak = max(peak, len(fake.running))
        await asyncio.sleep(0.01)
        return ok(attempt)

    fake = FakeExecutor(behaviour)

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit(concurrency=3)]) as runner:
            ids = [(await runner.submit("t", {"i": i})).run.id for i in range(12)]
            runs = [await runner.wait(i, 5) for i in ids]
            assert {r.status for r in runs} == {"succeeded"}

    asyncio.run(scenario())
    assert peak == 3


def test_keys_start_one_run_per_delivery(stores: Stores) -> None:
    fake = FakeExecutor(ok)

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit()]) as runner:
            created = await asyncio.gather(
                *(runner.submit("t", {"n": n}, key="delivery-7", key_ttl=60) for n in range(20))
            )
            assert sum(c.created for c in created) == 1
            assert len({c.run.id for c in created}) == 1
            await runner.wait(created[0].run.id, 5)

    asyncio.run(scenario())
    assert len(fake.attempts) == 1


def test_recovery_reattaches_retries_or_fails_what_was_running(stores: Stores) -> None:
    """A run left running with a handle is reattached (its result kept, not re-run); one
    whose attempt is gone is retried if it may be, else failed as lost."""

    async def crashed() -> list[str]:
        store = stores.open()
        items = [NewRun("t", {"n": 1}), NewRun("t", {"n": 2}, 2), NewRun("t", {"n": 3})]
        runs = [c.run for c in await store.create_many(items)]
        for run in runs:
            await store.start_attempt(run.id)
        await store.set_handle(runs[0].id, "fake:alive")
        await store.set_handle(runs[1].id, "fake:gone")
        await store.close()
        return [run.id for run in runs]

    adopted, retried, lost = asyncio.run(crashed())
    fake = FakeExecutor(ok)
    fake.adopt = lambda a: ok(a) if a.run_id == adopted else None

    async def scenario() -> None:
        async with runner_over(stores, fake, [unit()]) as runner:
            done = [await runner.wait(i, 5) for i in (adopted, retried, lost)]
            assert [(r.status, r.attempts, r.error) for r in done] == [
                ("succeeded", 1, None), ("succeeded", 2, None), ("failed", 1, WORKER_LOST),
            ]  # fmt: skip
            assert done[0].outputs == {"echo": {"n": 1}}

    asyncio.run(scenario())
    assert [a.run_id for a in fake.attempts] == [retried]  # the adopted one was not re-run
    assert [(r, h.ref) for r, h in fake.reattached] == [(adopted, "alive"), (retried, "gone")]


def test_removing_a_task_fails_its_queued_runs(stores: Stores) -> None:
    release = asyncio.Event()

    async def slow(attempt: Attempt) -> AttemptResult:
        await release.wait()
        return ok(attempt)

    async def scenario() -> None:
        async with runner_over(stores, FakeExecutor(slow), [unit(concurrency=1)]) as runner:
            busy = (await runner.submit("t", {})).run
            queued = (await runner.submit("t", {})).run
            await until(lambda: _status_is(runner, busy.id, RunStatus.RUNNING))
            await runner.configure([], {})
            release.set()
            assert (await runner.wait(busy.id, 5)).status == "succeeded"
            gone = await runner.get(queued.id)
            assert (gone.status, gone.error) == ("failed", "task 't' was removed")

    asyncio.run(scenario())


async def _status_is(runner: Runner, run_id: str, status: RunStatus) -> bool:
    return (await runner.get(run_id)).status == status
