"""The runner: one pool of workers per task, fed from the run store.

Used by the control plane from its event loop:

    runner = Runner(store, logs_dir, base_url)
    await runner.configure(tasks)      # start, replace or stop pools to match
    await runner.start()               # recover what a previous control plane left
    run = await runner.submit("add", {"x": 1})
    run = await runner.wait(run.id, timeout=30)
    await runner.stop()

Every store call happens on the event loop, so a run's state cannot change between a
check and the write that follows it. Runs submitted together (in the same turn of the
loop) are committed in one transaction, each before its `submit()` returns.

Retries wait `retry_delay * 2 ** (attempt - 1)` seconds (0.5 s, 1 s, 2 s, ...) and are
recorded in the store as `queued`; the number of attempts a run may have is fixed when it
is submitted. Call `configure()` before `start()` so recovered runs find their pools; a
run of a task that is not configured stays queued until its task is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.runs.errors import UnknownRunError, UnknownTaskError
from engine.runs.inputs import InputValidator
from engine.runs.metrics import record_run
from engine.runs.pool import Pool, TaskConfig
from engine.runs.store import Run, RunStatus, RunStore

__all__ = ["WORKER_LOST", "Runner", "TaskConfig"]

WORKER_LOST = "worker lost (control plane restarted)"
"""The error of a run that was running when a previous control plane ended."""

_Pending = tuple[str, dict[str, Any], int, "asyncio.Future[Run]"]


class Runner:
    """Runs tasks' handlers in pre-started worker processes; see the module docstring."""

    def __init__(
        self, store: RunStore, logs_dir: Path, base_url: str = "", *, retry_delay: float = 0.5
    ) -> None:
        self.store = store
        self.logs_dir = logs_dir
        self.base_url = base_url
        self.retry_delay = retry_delay
        self._tasks: dict[str, TaskConfig] = {}
        self._validators: dict[str, InputValidator] = {}
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._pools: dict[str, Pool] = {}
        self._retired: list[Pool] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._subscribers: dict[str, set[asyncio.Queue[Run]]] = {}
        self._pending: list[_Pending] = []
        self._started = False

    @property
    def tasks(self) -> Mapping[str, TaskConfig]:
        """The configured tasks by name."""
        return self._tasks

    async def configure(self, tasks: Iterable[TaskConfig]) -> None:
        """Match the pools to `tasks`: start new ones, replace changed ones, stop removed ones.

        A replaced or removed pool finishes the runs it is executing; queued runs move to
        the new pool, or fail if their task was removed.
        """
        wanted = {config.name: config for config in tasks}
        changed = {name: c for name, c in wanted.items() if self._tasks.get(name) != c}
        validators = {name: InputValidator(c.input_schema) for name, c in changed.items()}
        for name in self._tasks.keys() - wanted.keys():
            self._remove(name)
        self._tasks = wanted
        self._validators.update(validators)
        for config in changed.values():
            await self._replace_pool(config)

    async def start(self) -> None:
        """Recover: runs left `running` are retried (or failed); queued runs are enqueued."""
        self._started = True
        active = {run_id for pool in self._all_pools() for run_id in pool.running}
        for run in self.store.unfinished():
            if run.id in active:
                continue
            if run.status == RunStatus.RUNNING:
                if run.attempts >= run.max_attempts:
                    self._changed(self.store.finish(run.id, RunStatus.FAILED, error=WORKER_LOST))
                    continue
                self._changed(self.store.requeue(run.id, WORKER_LOST))
            self._enqueue(run.task, run.id)

    async def stop(self) -> None:
        """Stop every worker (by pid); runs in flight stay `running` for the next `start()`."""
        self._flush()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        pools, self._pools, self._retired = [*self._all_pools()], {}, []
        await asyncio.gather(*(pool.stop() for pool in pools))
        self._queues.clear()
        self._tasks, self._started = {}, False

    async def submit(self, task: str, inputs: object) -> Run:
        """Validate, store and enqueue a run; it is committed when this returns.

        Raises UnknownTaskError for a task that is not configured and RunInputError
        (naming the field) for inputs that fail the task's schema.
        """
        config = self._tasks.get(task)
        if config is None:
            raise UnknownTaskError(task, self._tasks)
        valid = self._validators[task].validate(inputs)
        future: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._pending.append((task, valid, 1 + config.retries, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def get(self, run_id: str) -> Run:
        """The run with this id; raises UnknownRunError."""
        run = self.store.get(run_id)
        if run is None:
            raise UnknownRunError(run_id)
        return run

    async def wait(self, run_id: str, timeout: float | None) -> Run:
        """The run once it is finished, or as it is when `timeout` seconds have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async with contextlib.aclosing(self.subscribe(run_id)) as changes:
                    async for _ in changes:
                        pass
        return self.get(run_id)

    async def subscribe(self, run_id: str) -> AsyncIterator[Run]:
        """The run now, then on each change; ends after a final state. UnknownRunError."""
        changes: asyncio.Queue[Run] = asyncio.Queue()
        self._subscribers.setdefault(run_id, set()).add(changes)
        try:
            run = self.get(run_id)
            yield run
            while not run.finished:
                run = await changes.get()
                yield run
        finally:
            subscribers = self._subscribers.get(run_id, set())
            subscribers.discard(changes)
            if not subscribers:
                self._subscribers.pop(run_id, None)

    async def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run (its worker is killed); a finished run is left as is."""
        run = self.get(run_id)
        if run.finished:
            return run
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        run = self.store.finish(run_id, RunStatus.CANCELLED)
        self._changed(run)
        for pool in self._all_pools():
            pool.kill_run(run_id)
        return run

    def _flush(self) -> None:
        """Commit every pending submission in one transaction, then enqueue and answer."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            runs = self.store.create_many(
                [(task, inputs, attempts) for task, inputs, attempts, _ in batch],
                logs_dir=self.logs_dir,
            )
        except Exception as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for run, (*_, future) in zip(runs, batch, strict=True):
            self._enqueue(run.task, run.id)
            if not future.done():  # the submitter may have gone; the run still runs
                future.set_result(run)

    async def _replace_pool(self, config: TaskConfig) -> None:
        old = self._pools.pop(config.name, None)
        if old is not None:
            old.retire()
            self._retired.append(old)
        fresh = config.name not in self._queues
        queue = self._queues.setdefault(config.name, asyncio.Queue())
        pool = Pool(
            config,
            queue,
            self.store,
            logs_dir=self.logs_dir,
            base_url=self.base_url,
            on_change=self._changed,
            on_retry=self._schedule_retry,
        )
        self._pools[config.name] = pool
        await pool.start()
        if fresh and self._started:
            for run in self.store.unfinished():
                if run.task == config.name and run.status == RunStatus.QUEUED:
                    self._enqueue(run.task, run.id)

    def _remove(self, name: str) -> None:
        pool = self._pools.pop(name)
        pool.retire()
        self._retired.append(pool)
        del self._queues[name]
        self._validators.pop(name, None)
        for run in self.store.unfinished():
            if run.task == name and run.status == RunStatus.QUEUED:
                error = f"task {name!r} was removed"
                self._changed(self.store.finish(run.id, RunStatus.FAILED, error=error))

    def _all_pools(self) -> list[Pool]:
        self._retired = [pool for pool in self._retired if not pool.done]
        return [*self._pools.values(), *self._retired]

    def _enqueue(self, task: str, run_id: str) -> None:
        queue = self._queues.get(task)
        if queue is not None:
            queue.put_nowait(run_id)

    def _schedule_retry(self, run: Run) -> None:
        delay = self.retry_delay * 2 ** max(0, run.attempts - 1)
        loop = asyncio.get_running_loop()
        self._timers[run.id] = loop.call_later(delay, self._retry, run.task, run.id)

    def _retry(self, task: str, run_id: str) -> None:
        self._timers.pop(run_id, None)
        self._enqueue(task, run_id)

    def _changed(self, run: Run) -> None:
        record_run(run)
        for changes in self._subscribers.get(run.id, ()):
            changes.put_nowait(run)
