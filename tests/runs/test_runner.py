from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.backends.base import NewRun, Run, RunStore, TaskUnit
from engine.errors import RunInputError
from engine.runs.errors import UnknownTaskError
from engine.runs.runner import WORKER_LOST
from engine.runs.store import RunStatus
from tests.runs.conftest import Stores, finished, running, sqlite_only, until

Task = Callable[..., TaskUnit]


def test_success_with_outputs_sync_async_and_sibling_import(stores: Stores, task: Task) -> None:
    tasks = [
        task("add", inputs={"x": {"type": "integer"}, "y": {"type": "integer", "default": 1}}),
        task("add-async", "add_async"),
        task("sibling"),
    ]

    async def scenario() -> None:
        async with running(stores, tasks) as runner:
            add = await finished(runner, (await runner.submit("add", {"x": 41})).run)
            assert (add.status, add.outputs, add.inputs, add.attempts) == (
                "succeeded", {"sum": 42}, {"x": 41, "y": 1}, 1,
            )  # fmt: skip
            assert add.error is None and add.started_at <= add.finished_at
            aadd = await finished(runner, (await runner.submit("add-async", {"x": 1})).run)
            assert (aadd.status, aadd.outputs) == ("succeeded", {"sum": 2})
            sibling = await finished(runner, (await runner.submit("sibling", {"x": 21})).run)
            assert (sibling.status, sibling.outputs) == ("succeeded", 42)

    asyncio.run(scenario())


def test_unknown_task_and_bad_inputs_are_refused_before_storing(stores: Stores, task: Task) -> None:
    async def scenario() -> None:
        async with running(stores, [task("add", inputs={"x": {}})]) as runner:
            with pytest.raises(UnknownTaskError) as unknown:
                await runner.submit("ad", {"x": 1})
            assert str(unknown.value) == "unknown task 'ad'; did you mean 'add'?"
            with pytest.raises(RunInputError) as bad:
                await runner.submit("add", {})
            assert (bad.value.field, bad.value.message) == ("x", "'x' is a required property")
            assert await runner.store.list_runs() == []

    asyncio.run(scenario())


def test_failing_task_fails_with_type_and_message_and_traceback_in_log(
    stores: Stores, task: Task
) -> None:
    async def scenario() -> None:
        async with running(stores, [task("fail"), task("not-json", "not_json")]) as r:
            run = await finished(r, (await r.submit("fail", {"message": "it broke"})).run)
            assert (run.status, run.error, run.attempts) == ("failed", "ValueError: it broke", 1)
            log = Path(run.log_path).read_text()
            assert "Traceback (most recent call last)" in log and "it broke" in log
            bad = await finished(r, (await r.submit("not-json", {})).run)
            assert bad.status == "failed"
            assert bad.error == (
                "outputs are not JSON-serialisable: Object of type set is not JSON serializable"
            )

    asyncio.run(scenario())


def test_retries_happen_exactly_the_configured_number_of_times(
    tmp_path: Path, stores: Stores, task: Task
) -> None:
    counter = tmp_path / "counter"

    async def scenario() -> None:
        tasks = [task("flaky", "count_and_fail", retries=2)]
        async with running(stores, tasks, retry_delay=0.05) as runner:
            run = await finished(
                runner, (await runner.submit("flaky", {"counter": str(counter)})).run
            )
            assert (run.status, run.attempts, run.error) == ("failed", 3, "RuntimeError: again")

    asyncio.run(scenario())
    assert counter.read_text() == "xxx"


def test_timeout_ends_the_worker_and_the_pool_recovers(stores: Stores, task: Task) -> None:
    async def scenario() -> None:
        tasks = [task("sleep", timeout=0.3, retries=3)]
        async with running(stores, tasks) as runner:
            slow = await finished(runner, (await runner.submit("sleep", {"seconds": 30})).run)
            assert (slow.status, slow.error, slow.attempts) == (
                "timed_out", "timed out after 0.3 s", 1,
            )  # fmt: skip
            quick = await finished(runner, (await runner.submit("sleep", {"seconds": 0})).run)
            assert (quick.status, quick.outputs) == ("succeeded", 0)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("retries", "status", "attempts", "outputs", "error"),
    [
        (1, "succeeded", 2, "second", None),
        (0, "failed", 1, None, "worker lost (killed by SIGKILL)"),
    ],
    ids=["retried", "failed"],
)
def test_a_worker_killed_mid_run_is_never_lost(
    tmp_path: Path, stores: Stores, task: Task, retries: int, status: str, attempts: int,
    outputs: object, error: str | None,
) -> None:  # fmt: skip
    pidfile, marker = tmp_path / "pid", tmp_path / "marker"

    async def scenario() -> None:
        tasks = [task("die", "die_once", retries=retries), task("add")]
        async with running(stores, tasks, retry_delay=0.05) as runner:
            inputs = {"marker": str(marker), "pidfile": str(pidfile)}
            run = (await runner.submit("die", inputs)).run
            await until(pidfile.exists)
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            run = await finished(runner, run)
            assert (run.status, run.attempts, run.outputs, run.error) == (
                status, attempts, outputs, error,
            )  # fmt: skip
            after = await finished(runner, (await runner.submit("die", inputs)).run)
            assert (after.status, after.outputs) == ("succeeded", "second")

    asyncio.run(scenario())


def test_cancel_a_queued_and_a_running_run(tmp_path: Path, stores: Stores, task: Task) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        async with running(stores, [task("hang"), task("add")]) as runner:
            busy = (await runner.submit("hang", {"pidfile": str(pidfile)})).run
            waiting = (await runner.submit("hang", {"pidfile": str(pidfile)})).run
            await until(pidfile.exists)
            queued = await runner.cancel(waiting.id)
            assert (queued.status, queued.attempts) == ("cancelled", 0)
            cancelled = await runner.cancel(busy.id)
            assert (cancelled.status, cancelled.attempts) == ("cancelled", 1)
            await until(lambda: not _alive(int(pidfile.read_text())))
            assert (await runner.cancel(busy.id)).status == "cancelled"
            assert (await runner.wait(busy.id, 1)).status == "cancelled"
            ok = await finished(runner, (await runner.submit("add", {"x": 1})).run)
            assert ok.status == "succeeded"

    asyncio.run(scenario())


@sqlite_only
def test_stdout_stderr_and_child_output_go_to_the_run_log(stores: Stores, task: Task) -> None:
    async def scenario() -> None:
        async with running(stores, [task("talk")]) as runner:
            run = await finished(runner, (await runner.submit("talk", {"text": "hello"})).run)
            assert run.outputs == "hello"
            assert Path(run.log_path).read_text() == "out: hello\nerr: hello\nfrom-child\n"

    asyncio.run(scenario())


@sqlite_only
def test_each_task_sees_only_its_own_environment(
    stores: Stores, task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_SECRET", "from-the-user")
    tasks = [task("a", "env", env={"SECRET_A": "a-value"}), task("b", "env")]

    async def scenario() -> None:
        async with running(stores, tasks) as runner:
            outputs, ids = {}, {}
            for name, var in [("a", "SECRET_A"), ("b", "SECRET_A"), ("a", "USER_SECRET"),
                              ("a", "ENGINE_RUN_ID"), ("a", "PYTHONPATH")]:  # fmt: skip
                run = await finished(runner, (await runner.submit(name, {"name": var})).run)
                outputs[name, var] = run.outputs
                ids[name, var] = run.id
            assert outputs["a", "SECRET_A"] == "a-value"
            assert outputs["b", "SECRET_A"] is None
            assert outputs["a", "USER_SECRET"] is None
            assert outputs["a", "ENGINE_RUN_ID"] == ids["a", "ENGINE_RUN_ID"]
            assert outputs["a", "PYTHONPATH"].split(os.pathsep)[0] == str(task("a").bundle.root)

    asyncio.run(scenario())


def test_a_new_runner_over_the_same_store_completes_queued_runs(stores: Stores, task: Task) -> None:
    tasks = [task("sleep", retries=1)]

    async def first() -> list[str]:
        async with running(stores, tasks) as runner:
            runs = [(await runner.submit("sleep", {"seconds": 0.5})).run for _ in range(4)]
            await until(lambda: _status(runner.store, runs[0].id, "running"))
            return [run.id for run in runs]

    async def second(ids: list[str]) -> None:
        async with running(stores, tasks) as runner:
            done = [await finished(runner, await runner.get(run_id)) for run_id in ids]
            assert [(r.status, r.attempts) for r in done] == [
                ("succeeded", 2), ("succeeded", 1), ("succeeded", 1), ("succeeded", 1),
            ]  # fmt: skip

    ids = asyncio.run(first())
    assert asyncio.run(_statuses(stores, ids)) == ["running", "queued", "queued", "queued"]
    asyncio.run(second(ids))


def test_runs_running_at_a_crash_are_retried_or_failed(
    tmp_path: Path, stores: Stores, task: Task
) -> None:

    async def crashed() -> list[Run]:
        store = stores.open()
        items = [NewRun("add", {"x": 1}, max_attempts=2), NewRun("add", {"x": 2})]
        runs = [c.run for c in await store.create_many(items, logs_dir=tmp_path)]
        for run in runs:
            await store.start_attempt(run.id)
        await store.close()
        return runs

    retried, lost = asyncio.run(crashed())

    async def scenario() -> None:
        async with running(stores, [task("add")]) as runner:
            again = await finished(runner, retried)
            assert (again.status, again.attempts, again.outputs) == ("succeeded", 2, {"sum": 2})
            failed = await runner.get(lost.id)
            assert (failed.status, failed.attempts, failed.error) == ("failed", 1, WORKER_LOST)

    asyncio.run(scenario())


def test_reconfigure_replaces_changed_pools_and_fails_runs_of_removed_tasks(
    stores: Stores, task: Task
) -> None:
    async def scenario() -> None:
        async with running(stores, [task("a", "env"), task("sleep")]) as runner:
            blocker = (await runner.submit("sleep", {"seconds": 0.5})).run
            orphan = (await runner.submit("sleep", {"seconds": 0})).run
            await runner.configure([task("a", "env", env={"V": "2"})], {})
            assert (await finished(runner, blocker)).status == "succeeded"
            gone = await runner.get(orphan.id)
            assert (gone.status, gone.error) == ("failed", "task 'sleep' was removed")
            run = await finished(runner, (await runner.submit("a", {"name": "V"})).run)
            assert run.outputs == "2"

    asyncio.run(scenario())


@sqlite_only
def test_a_handler_that_cannot_be_imported_fails_its_runs(stores: Stores, task: Task) -> None:
    async def scenario() -> None:
        async with running(stores, [task("missing")]) as runner:
            run = await finished(runner, (await runner.submit("missing", {})).run)
            assert run.status == "failed"
            assert run.error == (
                "cannot import tasks:missing: AttributeError: module 'tasks' has no attribute"
                " 'missing'"
            )

    asyncio.run(scenario())


def test_subscribe_yields_each_state_until_final(stores: Stores, task: Task) -> None:
    async def scenario() -> None:
        async with running(stores, [task("sleep")]) as runner:
            run = (await runner.submit("sleep", {"seconds": 0.2})).run
            seen = [change.status async for change in runner.subscribe(run.id)]
            assert seen[-1] == RunStatus.SUCCEEDED
            assert seen in (["queued", "running", "succeeded"], ["running", "succeeded"])

    asyncio.run(scenario())


async def _status(store: RunStore, run_id: str, status: str) -> bool:
    run = await store.get(run_id)
    return run is not None and run.status == status


async def _statuses(stores: Stores, ids: list[str]) -> list[str]:
    store = stores.open()
    runs = [await store.get(i) for i in ids]
    await store.close()
    return [run.status if run else "missing" for run in runs]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
