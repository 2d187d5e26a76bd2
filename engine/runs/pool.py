"""One task's pool of worker processes, and how it carries a run through its states.

Each of the `concurrency` slots owns one pre-started worker and takes run ids from the
task's queue, one at a time:

    queued ─▶ running ─▶ succeeded
                      ├▶ failed      the handler raised, or its worker was lost, no attempts left
                      ├▶ queued      the same, with attempts left (the runner re-enqueues it)
                      └▶ timed_out   the worker was killed at the task's timeout (not retried)

A worker that is killed (timeout, cancel) or dies is replaced before the slot takes its
next run, so runs never pay for an interpreter's start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.runs.process import WorkerLost, WorkerProcess, WorkerStartError
from engine.runs.store import Run, RunStatus, RunStore


@dataclass(frozen=True)
class TaskConfig:
    """How to run one task. Two configs are the same pool exactly when they are equal.

    `env` is the worker's whole environment (nothing is inherited); the runner only puts
    `cwd` first on PYTHONPATH. `input_schema` is a JSON Schema object (see
    `engine.runs.inputs.input_schema`). `retries` are extra attempts after a failure;
    `timeout` is seconds per attempt.
    """

    name: str
    handler: str
    env: dict[str, str]
    cwd: Path
    retries: int = 0
    timeout: float | None = None
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    concurrency: int = 2


@dataclass
class _Slot:
    """One place in the pool: its worker and the run it is executing, if any."""

    worker: WorkerProcess | None = None
    busy: bool = False
    run_id: str | None = None
    closing: bool = False
    task: asyncio.Task[None] | None = None


class Pool:
    """The workers of one task, executing the run ids put in `queue`."""

    def __init__(
        self,
        config: TaskConfig,
        queue: asyncio.Queue[str],
        store: RunStore,
        *,
        logs_dir: Path,
        base_url: str,
        on_change: Callable[[Run], None],
        on_retry: Callable[[Run], None],
    ) -> None:
        self.config = config
        self._queue = queue
        self._store = store
        self._logs_dir = logs_dir
        self._base_url = base_url.rstrip("/")
        self._on_change = on_change
        self._on_retry = on_retry
        self._slots = [_Slot() for _ in range(max(1, config.concurrency))]

    async def start(self) -> None:
        """Start every slot's worker (waiting until each is ready), then serve the queue."""
        await asyncio.gather(*(self._prestart(slot) for slot in self._slots))
        for slot in self._slots:
            slot.task = asyncio.create_task(self._serve(slot), name=f"run-pool-{self.config.name}")

    @property
    def running(self) -> set[str]:
        """Ids of the runs this pool is executing now."""
        return {slot.run_id for slot in self._slots if slot.run_id is not None}

    @property
    def done(self) -> bool:
        """Whether every slot has ended (after `retire` or `stop`)."""
        return all(slot.task is None or slot.task.done() for slot in self._slots)

    def kill_run(self, run_id: str) -> None:
        """Kill the worker executing `run_id`, if any (it is replaced)."""
        for slot in self._slots:
            if slot.run_id == run_id and slot.worker is not None:
                slot.worker.kill()

    def retire(self) -> None:
        """Take no more runs: idle slots end now, busy ones after their current run."""
        for slot in self._slots:
            slot.closing = True
            if not slot.busy and slot.task is not None:
                slot.task.cancel()

    async def stop(self) -> None:
        """End every slot and worker now; a run in flight stays `running` for recovery."""
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, slot: _Slot) -> None:
        try:
            while not slot.closing:
                await self._prestart(slot)
                run_id = await self._queue.get()
                slot.busy = True
                try:
                    await self._execute(slot, run_id)
                finally:
                    slot.busy = False
        finally:
            if slot.worker is not None:
                await slot.worker.stop()
                slot.worker = None

    async def _prestart(self, slot: _Slot) -> None:
        # A task whose handler cannot be imported fails its runs with the reason instead.
        with contextlib.suppress(WorkerStartError):
            await self._worker(slot)

    async def _worker(self, slot: _Slot) -> WorkerProcess:
        if slot.worker is not None and slot.worker.process.returncode is not None:
            await self._drop(slot)  # it died while idle
        if slot.worker is None:
            slot.worker = await WorkerProcess.spawn(
                self.config.handler,
                cwd=self.config.cwd,
                env=self.config.env,
                output=self._logs_dir / "workers" / f"{self.config.name}.log",
            )
        return slot.worker

    async def _execute(self, slot: _Slot, run_id: str) -> None:
        try:
            worker: WorkerProcess | None = await self._worker(slot)
            start_error = ""
        except WorkerStartError as exc:
            worker, start_error = None, str(exc)
        run = self._store.get(run_id)
        if run is None or run.status != RunStatus.QUEUED:
            return  # cancelled while queued, or enqueued twice
        run = self._store.start_attempt(run_id)
        self._on_change(run)
        if worker is None:
            return self._fail(run_id, start_error)
        slot.run_id = run_id
        try:
            reply = await asyncio.wait_for(worker.run(self._job(run)), self.config.timeout)
        except TimeoutError:
            await self._drop(slot)
            error = f"timed out after {self.config.timeout:g} s"
            return self._settle(run_id, RunStatus.TIMED_OUT, error=error)
        except WorkerLost as exc:
            await self._drop(slot)
            return self._fail(run_id, str(exc))
        finally:
            slot.run_id = None
        if reply["ok"]:
            return self._settle(run_id, RunStatus.SUCCEEDED, outputs=reply["outputs"])
        return self._fail(run_id, reply["error"])

    def _job(self, run: Run) -> dict[str, Any]:
        env = {"ENGINE_RUN_ID": run.id}
        if self._base_url:
            env["ENGINE_RUN_URL"] = f"{self._base_url}/runs/{run.id}"
        log_path = run.log_path or str(self._logs_dir / f"{run.id}.log")
        return {"id": run.id, "inputs": run.inputs, "log_path": log_path,
                "attempt": run.attempts, "env": env}  # fmt: skip

    async def _drop(self, slot: _Slot) -> None:
        if slot.worker is not None:
            worker, slot.worker = slot.worker, None
            worker.kill()
            await worker.close()

    def _fail(self, run_id: str, error: str) -> None:
        run = self._store.get(run_id)
        if run is None or run.status != RunStatus.RUNNING:
            return
        if run.attempts < run.max_attempts:
            run = self._store.requeue(run_id, error)
            self._on_change(run)
            self._on_retry(run)
        else:
            self._settle(run_id, RunStatus.FAILED, error=error)

    def _settle(
        self, run_id: str, status: RunStatus, *, outputs: Any = None, error: str | None = None
    ) -> None:
        run = self._store.get(run_id)
        if run is not None and run.status == RunStatus.RUNNING:  # not cancelled meanwhile
            self._on_change(self._store.finish(run_id, status, outputs=outputs, error=error))
