"""The runner: queues, slots, retries, timeouts and cancel over any `TaskExecutor`.

Used by the control plane from its event loop:

    runner = Runner(store, executor, logs_dir, base_url)
    await runner.configure(units, endpoints)  # the tasks it runs (the executor pre-starts)
    await runner.start()                      # recover what a previous control plane left
    created = await runner.submit("add", {"x": 1})
    run = await runner.wait(created.run.id, timeout=30)
    await runner.stop()

Each task has a queue of run ids and `concurrency` slots taking from it; a slot carries
one run at a time through its states, every change a compare-and-set in the store (a
refused one means someone else, e.g. a cancel, moved the run first: the slot lets it be):

    queued ─▶ running ─▶ succeeded
                      ├▶ failed      the attempt failed or was lost, no attempts left
                      ├▶ queued      the same, with attempts left (retried after a back-off)
                      ├▶ timed_out   `executor.run()` cancelled at the task's timeout
                      └▶ cancelled   by `cancel()`, which cancels the `executor.run()` call

Runs submitted in the same turn of the loop are committed in one transaction, each before
its `submit()` returns. Retries wait `retry_delay * 2 ** (attempt - 1)` seconds.

The slot awaits `executor.run()` inline (no task in between: a run costs no extra turn
of the loop); a timeout or a cancel ends that await. Once the attempt started, the
runner records where it runs (`executor.handle()`) with the run, and the task's timeout
starts counting (waiting for a worker is not the attempt's time). A helper polls the
executor from the start of the call, yielding one loop turn at a time at first, so that
an executor which reports its handle and then yields once before the attempt can begin
(the local one) has it recorded first. On `start()`, a run
left `running` with a handle is handed to `executor.reattach()`: its attempt is waited
for (it counts against no slot), never started a second time beside it; one without a
handle, or whose attempt is gone without a result, is retried or failed as lost.

Call `configure()` before `start()` so recovered runs find their queues; a run of a task
that is not configured stays queued until its task is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Outcome,
    TaskExecutor,
    TaskUnit,
)
from engine.runs.errors import UnknownRunError, UnknownTaskError
from engine.runs.inputs import InputValidator
from engine.runs.metrics import record_run
from engine.runs.store import Created, NewRun, Run, RunStatus, RunStore

__all__ = ["WORKER_LOST", "Runner"]

log = logging.getLogger("engine.runs")

WORKER_LOST = "worker lost (control plane restarted)"
"""The error of a run whose attempt was lost when a previous control plane ended."""

_SPINS = 3
"""Loop turns the runner yields, one at a time, before it polls for a handle with sleeps."""
_POLL_MAX = 0.02
"""Longest pause between two polls of `executor.handle()`, in seconds."""

_Pending = tuple[NewRun, "asyncio.Future[Created]"]


@dataclass
class _Slot:
    """One place of a task's concurrency: the coroutine serving its queue."""

    task: asyncio.Task[None] | None = None
    busy: bool = False
    closing: bool = False

    def retire(self) -> None:
        """Take no more runs: end now if idle, else after the current run."""
        self.closing = True
        if not self.busy and self.task is not None:
            self.task.cancel()


class Runner:
    """Carries runs through their states on `executor`; see the module docstring."""

    def __init__(
        self,
        store: RunStore,
        executor: TaskExecutor,
        logs_dir: Path,
        base_url: str = "",
        *,
        retry_delay: float = 0.5,
    ) -> None:
        self.store = store
        self.executor = executor
        self.logs_dir = logs_dir
        self.base_url = base_url.rstrip("/")
        self.retry_delay = retry_delay
        self._units: dict[str, TaskUnit] = {}
        self._validators: dict[str, InputValidator] = {}
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._slots: dict[str, list[_Slot]] = {}
        self._retired: list[_Slot] = []
        self._attempts: dict[str, asyncio.Timeout] = {}  # run id -> its attempt's deadline
        self._cancelled: set[str] = set()
        self._adoptions: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._subscribers: dict[str, set[asyncio.Queue[Run]]] = {}
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._started = False
        self._waiting: set[str] = set()  # run ids in a queue, not yet taken by a slot
        self.leading = asyncio.Event()
        self.leading.set()
        """Set while this runner carries out runs. Several control planes on one shared
        store keep it set on one of them only (see `engine.server.leader`); the others
        store the runs submitted to them and leave them to it."""

    @property
    def tasks(self) -> Mapping[str, TaskUnit]:
        """The configured tasks by name."""
        return self._units

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        """Run these tasks from now on. A removed task's queued runs fail at once; then the
        executor gets the units (a changed hash gets fresh workers there), then queues and
        slots follow. Runs already running finish where they run."""
        wanted = {unit.name: unit for unit in units}
        for name in self._units.keys() - wanted.keys():
            await self._remove(name)  # first: none of its queued runs starts meanwhile
        await self.executor.configure(units, endpoints)
        for name, unit in wanted.items():
            old = self._units.get(name)
            if old is None or old.input_schema != unit.input_schema:
                self._validators[name] = InputValidator(unit.input_schema)
            self._units[name] = unit
            if old is None or old.concurrency != unit.concurrency:
                await self._restaff(unit, fresh=old is None)

    async def start(self) -> None:
        """Recover: runs left `running` are reattached, retried or failed; queued runs are
        enqueued."""
        self._started = True
        for run in await self.store.unfinished():
            if run.id in self._attempts:
                continue
            if run.status == RunStatus.QUEUED:
                self._enqueue(run.task, run.id)
            elif run.handle:
                adoption = asyncio.create_task(self._adopt(run), name=f"run-adopt-{run.id}")
                self._adoptions.add(adoption)
                adoption.add_done_callback(self._adoptions.discard)
            else:
                await self._fail(run, WORKER_LOST, retry_now=True)

    async def pick_up(self) -> None:
        """Enqueue the queued runs in the store, those other control planes stored too.
        A run enqueued twice starts once: starting it is a compare-and-set."""
        for run in await self.store.unfinished():
            if (
                run.status == RunStatus.QUEUED
                and run.id not in self._waiting | self._attempts.keys()
            ):
                self._enqueue(run.task, run.id)

    async def stop(self) -> None:
        """Stop every slot and attempt; runs in flight stay `running` for the next `start()`."""
        await self._flush()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        slots = [slot for slots in self._slots.values() for slot in slots] + self._retired
        tasks: list[asyncio.Future[Any]] = [slot.task for slot in slots if slot.task]
        tasks += self._adoptions  # attempts are awaited inside these: cancelled with them
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._slots, self._retired, self._queues = {}, [], {}
        self._units, self._validators, self._started = {}, {}, False

    async def submit(
        self,
        task: str,
        inputs: object,
        *,
        key: str | None = None,
        key_ttl: float | None = None,
        request_id: str | None = None,
    ) -> Created:
        """Validate, store and enqueue a run; it is committed when this returns. With `key`,
        a second submission within `key_ttl` s gets the first run (`created=False`);
        `request_id` is kept in the run's record.

        Raises UnknownTaskError for a task that is not configured and RunInputError
        (naming the field) for inputs that fail the task's schema.
        """
        unit = self._units.get(task)
        if unit is None:
            raise UnknownTaskError(task, self._units)
        valid = self._validators[task].validate(inputs)
        future: asyncio.Future[Created] = asyncio.get_running_loop().create_future()
        new = NewRun(task, valid, 1 + unit.retries, key, key_ttl, request_id)
        self._pending.append((new, future))
        if len(self._pending) == 1:
            flush = asyncio.create_task(self._flush())  # runs after this turn's submissions
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        return await future

    async def get(self, run_id: str) -> Run:
        """The run with this id; raises UnknownRunError."""
        run = await self.store.get(run_id)
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
        return await self.get(run_id)

    async def subscribe(self, run_id: str) -> AsyncGenerator[Run, None]:
        """The run now, then on each change; ends after a final state. UnknownRunError."""
        changes: asyncio.Queue[Run] = asyncio.Queue()
        self._subscribers.setdefault(run_id, set()).add(changes)
        try:
            run = await self.get(run_id)
            yield run
            while not run.finished:
                change = await changes.get()
                # A change made while the first read was in flight (a PostgreSQL store's
                # read awaits) may be one that read already saw: yield only progress.
                if _progress(change) > _progress(run):
                    run = change
                    yield run
        finally:
            subscribers = self._subscribers.get(run_id, set())
            subscribers.discard(changes)
            if not subscribers:
                self._subscribers.pop(run_id, None)

    async def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run (its attempt is stopped); a finished run is
        returned as it is."""
        run = await self.get(run_id)
        if run.finished:
            return run
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        expect = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
        cancelled = await self.store.finish(run_id, RunStatus.CANCELLED, expect=expect)
        if cancelled is None:  # it finished meanwhile
            return await self.get(run_id)
        self._changed(cancelled)
        deadline = self._attempts.get(run_id)
        if deadline is not None:  # ends the attempt's await now, as a timeout would
            self._cancelled.add(run_id)
            if not deadline.expired():
                deadline.reschedule(asyncio.get_running_loop().time())
        return cancelled

    # Submissions

    async def _flush(self) -> None:
        """Commit every pending submission in one transaction, then enqueue and answer."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            created = await self.store.create_many(
                [item for item, _ in batch], logs_dir=self.logs_dir
            )
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for result, (_, future) in zip(created, batch, strict=True):
            if result.created:
                self._enqueue(result.run.task, result.run.id)
            if not future.done():  # the submitter may have gone; the run still runs
                future.set_result(result)

    # Slots

    async def _restaff(self, unit: TaskUnit, *, fresh: bool) -> None:
        """Give the task `concurrency` new slots; old ones finish their current run."""
        for slot in self._slots.pop(unit.name, []):
            slot.retire()
            self._retired.append(slot)
        self._retired = [s for s in self._retired if s.task is not None and not s.task.done()]
        queue = self._queues.setdefault(unit.name, asyncio.Queue())
        slots = [_Slot() for _ in range(max(1, unit.concurrency))]
        for slot in slots:
            slot.task = asyncio.create_task(self._serve(slot, queue), name=f"run-{unit.name}")
        self._slots[unit.name] = slots
        if fresh and self._started:
            for run in await self.store.unfinished():
                if run.task == unit.name and run.status == RunStatus.QUEUED:
                    self._enqueue(run.task, run.id)

    async def _remove(self, name: str) -> None:
        for slot in self._slots.pop(name, []):
            slot.retire()
            self._retired.append(slot)
        self._queues.pop(name, None)
        self._units.pop(name, None)
        self._validators.pop(name, None)
        for run in await self.store.unfinished():
            if run.task == name and run.status == RunStatus.QUEUED:
                error = f"task {name!r} was removed"
                expect = frozenset({RunStatus.QUEUED})
                self._changed(
                    await self.store.finish(run.id, RunStatus.FAILED, error=error, expect=expect)
                )

    async def _serve(self, slot: _Slot, queue: asyncio.Queue[str]) -> None:
        while not slot.closing:
            run_id = await queue.get()
            self._waiting.discard(run_id)
            await self.leading.wait()  # a standby holds it; the leader runs it meanwhile
            slot.busy = True
            try:
                await self._execute(run_id)
            except Exception:  # a store error: the run stays as stored, the slot goes on
                log.exception("run %s: could not be carried out", run_id)
            finally:
                slot.busy = False

    async def _execute(self, run_id: str) -> None:
        run = await self.store.start_attempt(run_id)
        if run is None:
            return  # cancelled while queued, or enqueued twice
        self._changed(run)
        unit = self._units.get(run.task)
        timeout = unit.timeout if unit else None
        recorder = asyncio.create_task(self._record_handle(run.id, timeout))
        try:
            await self._carry(run, self.executor.run(self._attempt(run)), timeout, started=False)
        finally:
            recorder.cancel()

    async def _adopt(self, run: Run) -> None:
        """Wait for the attempt a previous control plane started, then settle the run."""
        assert run.handle is not None
        handle = AttemptHandle.decode(run.handle)
        unit = self._units.get(run.task)
        timeout = unit.timeout if unit else None
        if timeout is not None and run.started_at is not None:
            timeout = max(0.0, timeout - (time.time() - run.started_at))
        try:
            await self._carry(run, self.executor.reattach(self._attempt(run), handle), timeout)
        except Exception:
            log.exception("run %s: could not be reattached", run.id)

    async def _carry(
        self,
        run: Run,
        attempt: Awaitable[AttemptResult | None],
        timeout: float | None,
        *,
        started: bool = True,
    ) -> None:
        """Await the attempt (inline: no task between the executor and the slot) within
        `timeout` s, then settle the run by how it ended. Unless `started`, the timeout
        counts from when the executor reports the attempt's handle (waiting for a worker is
        not the attempt's time). `cancel()` moves the deadline to now, so a cancelled
        attempt ends the same way a timed-out one does."""
        deadline = asyncio.timeout(timeout if started else None)
        self._attempts[run.id] = deadline
        try:
            async with deadline:
                result = await attempt
        except Exception as exc:
            if run.id in self._cancelled:
                return  # cancel(): the store says so already
            if isinstance(exc, TimeoutError):  # ours, or the target's deadline (a Job's)
                error = f"timed out after {timeout:g} s" if timeout else _describe(exc)
                self._changed(await self.store.finish(run.id, RunStatus.TIMED_OUT, error=error))
                return
            log.error("run %s: the executor failed", run.id, exc_info=exc)
            result = AttemptResult(Outcome.LOST, error=_describe(exc))
        finally:
            self._attempts.pop(run.id, None)
            self._cancelled.discard(run.id)
        if result is None:
            await self._fail(run, WORKER_LOST, retry_now=True)
        elif result.outcome == Outcome.SUCCEEDED:
            done = await self.store.finish(run.id, RunStatus.SUCCEEDED, outputs=result.outputs)
            self._changed(done)
        else:
            await self._fail(run, result.error or f"attempt {result.outcome}")

    async def _record_handle(self, run_id: str, timeout: float | None) -> None:
        """Record the attempt's handle once the executor reports it (see the module
        docstring), and start its timeout: polled each loop turn at first, then at most
        `_POLL_MAX` s apart."""
        pause, spins = 0.0, 0
        while (deadline := self._attempts.get(run_id)) is not None:
            handle = self.executor.handle(run_id)
            if handle is not None:
                if timeout is not None and run_id not in self._cancelled:
                    # Its deadline was None until now; only cancel() moves it otherwise.
                    deadline.reschedule(asyncio.get_running_loop().time() + timeout)
                await self.store.set_handle(run_id, handle.encode())
                return
            if spins < _SPINS:
                spins += 1
                await asyncio.sleep(0)
            else:
                pause = min(_POLL_MAX, pause * 2 or 0.001)
                await asyncio.sleep(pause)

    async def _fail(self, run: Run, error: str, *, retry_now: bool = False) -> bool:
        """Retry the run if it has attempts left, else fail it; whether it was retried."""
        if run.attempts < run.max_attempts:
            requeued = await self.store.requeue(run.id, error)
            if requeued is None:
                return False
            self._changed(requeued)
            if retry_now:
                self._enqueue(requeued.task, requeued.id)
            else:
                self._schedule_retry(requeued)
            return True
        self._changed(await self.store.finish(run.id, RunStatus.FAILED, error=error))
        return False

    def _attempt(self, run: Run) -> Attempt:
        log_path = run.log_path or str(self.logs_dir / f"{run.id}.log")
        url = f"{self.base_url}/runs/{run.id}" if self.base_url else None
        return Attempt(run.id, run.task, run.attempts, run.inputs, log_path, url)

    def _enqueue(self, task: str, run_id: str) -> None:
        queue = self._queues.get(task)
        if queue is not None:
            queue.put_nowait(run_id)
            self._waiting.add(run_id)

    def _schedule_retry(self, run: Run) -> None:
        delay = self.retry_delay * 2 ** max(0, run.attempts - 1)
        loop = asyncio.get_running_loop()
        self._timers[run.id] = loop.call_later(delay, self._retry, run.task, run.id)

    def _retry(self, task: str, run_id: str) -> None:
        self._timers.pop(run_id, None)
        self._enqueue(task, run_id)

    def _changed(self, run: Run | None) -> None:
        if run is None:
            return  # a refused compare-and-set: someone else moved the run
        record_run(run)
        for changes in self._subscribers.get(run.id, ()):
            changes.put_nowait(run)


def _progress(run: Run) -> tuple[int, int]:
    """How far a run has got, in the order of its states: by attempts started, then
    running < queued again (a retry of that attempt) < final."""
    phase = 2 if run.finished else 1 if run.status == RunStatus.QUEUED else 0
    return run.attempts, phase


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
