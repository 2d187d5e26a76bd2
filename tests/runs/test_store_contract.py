"""The run-store contract (engine.backends.base.RunStore), the same tests on every store.

Each test gets an `open_store` that opens another store over the same data (a second
control plane on the same file or database), so commits and compare-and-sets are checked
across connections, not inside one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.backends.base import Created, NewRun, RunStatus, RunStore
from tests.runs.conftest import Stores

Opener = Callable[[], Awaitable[RunStore]]


@pytest.fixture
def open_store(stores: Stores) -> Opener:
    """Opens stores over one fresh SQLite file or PostgreSQL database."""

    async def opened() -> RunStore:
        return stores.open()

    return opened


def scenario(open_store: Opener, body: Callable[..., Awaitable[None]], stores: int = 1) -> None:
    """Run `body(*stores)` with `stores` stores open over the same data, closed after."""

    async def main() -> None:
        opened = [await open_store() for _ in range(stores)]
        try:
            await body(*opened)
        finally:
            for store in opened:
                await store.close()

    asyncio.run(main())


async def one(store: RunStore, task: str = "add", **options: Any) -> Created:
    inputs = options.pop("inputs", {"x": 1})
    [created] = await store.create_many([NewRun(task, inputs, **options)])
    return created


def test_create_many_stores_queued_runs_in_order_visible_to_another_store(
    open_store: Opener,
) -> None:
    async def body(store: RunStore, other: RunStore) -> None:
        items = [
            NewRun("add", {"x": i, "nested": {"b": 1, "a": 2}}, max_attempts=3) for i in range(5)
        ]
        created = await store.create_many(items, logs_dir=Path("/logs"))

        assert [c.created for c in created] == [True] * 5
        assert [c.run.inputs["x"] for c in created] == [0, 1, 2, 3, 4]
        for c in created:
            run = c.run
            assert (run.status, run.attempts, run.max_attempts) == (RunStatus.QUEUED, 0, 3)
            assert run.log_path == f"/logs/{run.id}.log"
            assert (run.started_at, run.finished_at, run.handle, run.outputs) == (None,) * 4
            assert await other.get(run.id) == run
        assert len({c.run.id for c in created}) == 5
        assert list((await other.get(created[0].run.id)).inputs["nested"]) == ["b", "a"]
        assert await other.get("no-such-run") is None
        assert await store.create_many([]) == []

    scenario(open_store, body, stores=2)


def test_the_request_id_stays_with_the_run_through_its_states(open_store: Opener) -> None:
    async def body(store: RunStore, other: RunStore) -> None:
        run = (await one(store, request_id="3f9c0a-from-the-app")).run
        assert run.request_id == "3f9c0a-from-the-app"
        await store.start_attempt(run.id)
        await store.finish(run.id, RunStatus.SUCCEEDED, outputs=2)
        seen = await other.get(run.id)
        assert seen is not None and (seen.status, seen.request_id) == (
            RunStatus.SUCCEEDED, "3f9c0a-from-the-app",
        )  # fmt: skip
        assert (await one(store)).run.request_id is None

    scenario(open_store, body, stores=2)


def test_a_handle_is_stored_as_given_and_seen_by_another_store(open_store: Opener) -> None:
    odd = "ray:job-'1'; DROP TABLE runs; -- \\ \u00e9"  # quotes, backslash, non-ASCII

    async def body(store: RunStore, other: RunStore) -> None:
        run = (await one(store)).run
        await store.start_attempt(run.id)
        handled = await store.set_handle(run.id, odd)
        assert handled is not None and handled.handle == odd
        seen = await other.get(run.id)
        assert seen is not None and seen.handle == odd
        cleared = await store.set_handle(run.id, None)
        assert cleared is not None and cleared.handle is None

    scenario(open_store, body, stores=2)


def test_every_transition_and_every_refused_compare_and_set(open_store: Opener) -> None:
    async def body(store: RunStore) -> None:
        run = (await one(store, max_attempts=2)).run
        assert await store.set_handle(run.id, "local:1") is None  # queued: no handle
        assert await store.requeue(run.id, "x") is None  # queued: not running
        assert await store.finish(run.id, RunStatus.SUCCEEDED) is None  # expects running

        started = await store.start_attempt(run.id)
        assert started is not None
        assert (started.status, started.attempts) == (RunStatus.RUNNING, 1)
        assert started.started_at is not None and started.started_at >= run.created_at
        assert await store.start_attempt(run.id) is None  # already running

        handled = await store.set_handle(run.id, "local:123:456")
        assert handled is not None and handled.handle == "local:123:456"

        requeued = await store.requeue(run.id, "RuntimeError: lost worker")
        assert requeued is not None
        assert (requeued.status, requeued.error, requeued.attempts) == (
            RunStatus.QUEUED,
            "RuntimeError: lost worker",
            1,
        )
        assert requeued.handle is None
        assert await store.requeue(run.id, "again") is None

        again = await store.start_attempt(run.id)
        assert again is not None and (again.attempts, again.error) == (2, None)
        outputs = {"y": [1, 2], "z": None, "b": 1, "a": 2}
        done = await store.finish(run.id, RunStatus.SUCCEEDED, outputs=outputs)
        assert done is not None and done.finished
        assert (done.status, done.outputs, done.error) == (RunStatus.SUCCEEDED, outputs, None)
        assert list(done.outputs) == ["y", "z", "b", "a"]
        assert done.finished_at is not None and done.finished_at >= again.started_at

        # A final run leaves its state for nothing.
        assert await store.start_attempt(run.id) is None
        assert await store.set_handle(run.id, "local:9") is None
        assert await store.requeue(run.id, "x") is None
        assert await store.finish(run.id, RunStatus.FAILED, error="late") is None
        any_state = frozenset(RunStatus)
        assert await store.finish(run.id, RunStatus.CANCELLED, expect=any_state - {
            RunStatus.SUCCEEDED
        }) is None  # fmt: skip
        assert await store.get(run.id) == done

        # Unknown runs change nothing.
        assert await store.start_attempt("missing") is None
        assert await store.finish("missing", RunStatus.FAILED) is None

    scenario(open_store, body)


def test_finish_from_queued_only_when_expected_and_only_to_a_final_state(
    open_store: Opener,
) -> None:
    async def body(store: RunStore) -> None:
        run = (await one(store)).run
        with pytest.raises(ValueError, match="final"):
            await store.finish(run.id, RunStatus.RUNNING, expect=frozenset({RunStatus.QUEUED}))
        cancelled = await store.finish(
            run.id, RunStatus.CANCELLED, error="cancelled", expect=frozenset({RunStatus.QUEUED})
        )
        assert cancelled is not None
        assert (cancelled.status, cancelled.error, cancelled.attempts) == (
            RunStatus.CANCELLED,
            "cancelled",
            0,
        )
        for status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            run = (await one(store)).run
            await store.start_attempt(run.id)
            ended = await store.finish(run.id, status, error="TimeoutError: 1 s")
            assert ended is not None and ended.status == status

    scenario(open_store, body)


def test_of_concurrent_compare_and_sets_from_two_stores_exactly_one_wins(
    open_store: Opener,
) -> None:
    async def body(first: RunStore, second: RunStore) -> None:
        runs = [c.run for c in await first.create_many([NewRun("add", {}) for _ in range(10)])]
        for run in runs:
            starts = [s.start_attempt(run.id) for s in (first, second) for _ in range(5)]
            assert sum(r is not None for r in await asyncio.gather(*starts)) == 1
            ends = [
                s.finish(run.id, status)
                for s in (first, second)
                for status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED)
            ]
            assert sum(r is not None for r in await asyncio.gather(*ends)) == 1

    scenario(open_store, body, stores=2)


def test_a_failing_item_rolls_back_its_whole_batch(open_store: Opener) -> None:
    async def body(store: RunStore, other: RunStore) -> None:
        batch = [
            NewRun("add", {"x": 1}, key="delivery-1", key_ttl=60),
            NewRun("add", {"x": 2}),
            NewRun("add", {"x": object()}),  # not JSON: the store cannot write it
        ]
        with pytest.raises((TypeError, ValueError)):
            await store.create_many(batch)
        assert await other.list_runs() == []
        assert await other.unfinished() == []
        # The rolled-back batch claimed no key.
        assert (await one(other, key="delivery-1", key_ttl=60)).created

    scenario(open_store, body, stores=2)


def test_unfinished_oldest_first_and_list_newest_first_with_filters(open_store: Opener) -> None:
    async def body(store: RunStore) -> None:
        a, b, c, d = (
            c.run
            for c in await store.create_many(
                [NewRun("add", {}), NewRun("sleep", {}), NewRun("add", {}), NewRun("add", {})]
            )
        )
        await store.start_attempt(b.id)
        await store.start_attempt(c.id)
        await store.finish(c.id, RunStatus.SUCCEEDED)
        await store.start_attempt(a.id)  # a is older than b, and running too
        e = (await one(store)).run

        assert [r.id for r in await store.unfinished()] == [a.id, b.id, d.id, e.id]
        assert [r.id for r in await store.list_runs()] == [e.id, d.id, c.id, b.id, a.id]
        assert [r.id for r in await store.list_runs(limit=2)] == [e.id, d.id]
        assert [r.id for r in await store.list_runs(task="sleep")] == [b.id]
        assert [r.id for r in await store.list_runs(status=RunStatus.RUNNING)] == [b.id, a.id]
        assert [r.id for r in await store.list_runs("add", RunStatus.SUCCEEDED)] == [c.id]
        assert await store.list_runs(task="nothing") == []

    scenario(open_store, body)


def test_an_idempotency_key_names_one_run_per_task_until_it_expires(open_store: Opener) -> None:
    async def body(store: RunStore, other: RunStore) -> None:
        first = await one(store, key="d-1", key_ttl=0.5)
        assert first.created
        again = await one(other, inputs={"x": 99}, key="d-1", key_ttl=0.5)
        assert again == Created(first.run, created=False)
        # Finished runs still hold their key: a redelivery after success starts nothing.
        await store.start_attempt(first.run.id)
        await store.finish(first.run.id, RunStatus.SUCCEEDED)
        assert not (await one(other, key="d-1", key_ttl=0.5)).created

        assert (await one(store, task="sleep", key="d-1", key_ttl=0.5)).created  # other task
        assert (await one(store, key="d-2", key_ttl=0.5)).created  # other key

        # Twice in one batch: one run, the second item gets it back.
        batch = await store.create_many(
            [NewRun("add", {}, key="d-3", key_ttl=5), NewRun("add", {}, key="d-3", key_ttl=5)]
        )
        assert [c.created for c in batch] == [True, False]
        assert batch[0].run == batch[1].run

        await asyncio.sleep(0.6)
        renewed = await one(other, key="d-1", key_ttl=0.5)
        assert renewed.created and renewed.run.id != first.run.id
        assert (await store.get(first.run.id)) is not None  # the old run is kept

    scenario(open_store, body, stores=2)


def test_concurrent_duplicates_from_two_stores_create_exactly_one_run(open_store: Opener) -> None:
    async def body(first: RunStore, second: RunStore) -> None:
        submissions = [
            s.create_many([NewRun("add", {"n": n}, key="same-delivery", key_ttl=60)])
            for n in range(25)
            for s in (first, second)
        ]
        results = [c for [c] in await asyncio.gather(*submissions)]
        assert sum(c.created for c in results) == 1
        assert len({c.run.id for c in results}) == 1
        assert len(await first.list_runs(task="add")) == 1

    scenario(open_store, body, stores=2)


def test_a_thousand_concurrent_submissions_are_all_stored_once(open_store: Opener) -> None:
    async def body(first: RunStore, second: RunStore) -> None:
        stores = (first, second)
        submissions = [stores[n % 2].create_many([NewRun("add", {"n": n})]) for n in range(1000)]
        results = [c for [c] in await asyncio.gather(*submissions)]
        assert all(c.created for c in results)
        assert len({c.run.id for c in results}) == 1000
        stored = await second.list_runs(limit=5000)
        assert sorted(r.inputs["n"] for r in stored) == list(range(1000))
        assert len(await first.unfinished()) == 1000

    scenario(open_store, body, stores=2)


def test_batches_sharing_keys_in_opposite_orders_neither_deadlock_nor_duplicate(
    open_store: Opener,
) -> None:
    async def body(first: RunStore, second: RunStore) -> None:
        for n in range(20):
            keys = [f"a{n}", f"b{n}"]
            batches = [
                store.create_many([NewRun("add", {}, key=k, key_ttl=60) for k in order])
                for store, order in ((first, keys), (second, keys[::-1]))
            ]
            results = [c for batch in await asyncio.gather(*batches) for c in batch]
            assert sum(c.created for c in results) == 2
            assert len({c.run.id for c in results}) == 2
        assert len(await first.list_runs(limit=100)) == 40

    scenario(open_store, body, stores=2)
