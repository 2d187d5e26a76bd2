"""The local task executor: attempts run in pre-started worker processes on this machine.

Each task version has its own set of `concurrency` workers, started by `configure()` (so
that no run pays for an interpreter's start) and each replaced in the background when it
is killed or dies. The rule for a changed task:

* A `TaskUnit` whose `hash` (or handler, environment, secrets, endpoints or concurrency)
  changed gets a fresh set of workers; every attempt that starts after `configure()`
  returns runs on the new version.
* Attempts already running finish on the old workers, which then stop; idle old workers
  stop at once. So edited task code never runs in a worker that imported the old code.

An attempt's handle is `local:<pid>:<start time>` of its worker: a control plane that was
killed and restarted finds the worker by it (`reattach()`), waits for it to end, and reads
the result the worker wrote next to the run's log (`<run>.result.json`) when it found the
socket it would have replied on gone with the old control plane. (A worker writes that
file only then: a run costs no file beyond its log.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Outcome,
    ProjectContext,
    TaskUnit,
    unit_environment,
)
from engine.backends.local import procs
from engine.backends.local.environment import secret_environment
from engine.backends.local.worker import DEFAULT_LOG_CAP
from engine.backends.local.workers import (
    WorkerLost,
    WorkerProcess,
    WorkerStartError,
    kill_group,
)

REATTACH_POLL = 0.05
"""Seconds between two looks at an adopted worker (it is not our child: no wait())."""

_SPAWNED_PAUSE = 0.025
"""After starting a worker on demand, how long to wait before sending the job: longer
than the runner's longest pause between two looks at `handle()` (20 ms), so the handle is
recorded before the attempt can begin, as it is for a pre-started worker."""


def result_path(log_path: str) -> Path:
    """Where the worker of a run writes its reply: beside the log, `<run>.result.json`."""
    log = Path(log_path)
    return log.with_name(f"{log.stem}.result.json")


@dataclass(frozen=True)
class _Version:
    """What a task's workers are started with: equal versions share workers."""

    hash: str
    handler: str
    cwd: Path
    env: tuple[tuple[str, str], ...]
    size: int


class _Workers:
    """The pre-started workers of one task version."""

    def __init__(self, name: str, version: _Version, output: Path) -> None:
        self.name = name
        self.version = version
        self._output = output
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self.retired = False

    async def start(self) -> None:
        """Start every worker and wait until each is ready (or failed to import)."""
        await asyncio.gather(*(self._add() for _ in range(self.version.size)))

    async def take(self) -> tuple[WorkerProcess, bool]:
        """An idle worker (or a new one if none is left), and whether it was just started.
        Raises WorkerStartError."""
        while self._idle:
            worker = self._idle.pop()
            if not worker.exited:
                self._busy.add(worker)
                return worker, False
            self._later(worker.close())  # it died while idle
        worker = await self._spawn()
        self._busy.add(worker)
        return worker, True

    def give_back(self, worker: WorkerProcess) -> None:
        """Keep a worker that finished its attempt, or stop it if it is not needed."""
        self._busy.discard(worker)
        if self.retired or len(self._idle) + len(self._busy) >= self.version.size:
            self._later(worker.stop())
        else:
            self._idle.append(worker)

    def discard(self, worker: WorkerProcess) -> None:
        """Drop a killed or lost worker, and start its replacement in the background."""
        self._busy.discard(worker)
        worker.kill()
        self._later(worker.close())
        if not self.retired:
            self._later(self._add())

    def retire(self) -> None:
        """Take no more attempts: idle workers stop now, busy ones once they finish."""
        self.retired = True
        idle, self._idle = self._idle, []
        for worker in idle:
            self._later(worker.stop())

    @property
    def done(self) -> bool:
        """Whether a retired set has no worker left, nor one still stopping."""
        return self.retired and not self._busy and not self._idle and not self._chores

    async def close(self) -> None:
        """Kill every worker and wait for them and every background chore."""
        self.retired = True
        workers = [*self._idle, *self._busy]
        self._idle, self._busy = [], set()
        for worker in workers:
            worker.kill()
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
        while self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    async def _spawn(self) -> WorkerProcess:
        version = self.version
        return await WorkerProcess.spawn(
            version.handler, cwd=version.cwd, env=dict(version.env), output=self._output
        )

    async def _add(self) -> None:
        # A handler that cannot be imported fails its attempts with the reason instead.
        with contextlib.suppress(WorkerStartError):
            worker = await self._spawn()
            if self.retired:
                await worker.stop()
            else:
                self._idle.append(worker)

    def _later(self, chore: Any) -> None:
        task = asyncio.ensure_future(chore)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)


class LocalTaskExecutor:
    """Carries out attempts in worker processes on this machine (see the module docstring).

    `base_env` is what every worker gets first (PATH, HOME, LANG, TZ, the project's process
    marker). `log_cap` bounds each run's log file, in bytes.
    """

    name = "local"

    def __init__(
        self,
        context: ProjectContext,
        base_env: Mapping[str, str],
        logs_dir: Path,
        secret_dir: Path,
        *,
        log_cap: int = DEFAULT_LOG_CAP,
    ) -> None:
        self.context = context
        self.base_env = dict(base_env)
        self.logs_dir = logs_dir
        self.secret_dir = secret_dir
        self.log_cap = log_cap
        self._current: dict[str, _Workers] = {}
        self._retired: list[_Workers] = []
        self._handles: dict[str, AttemptHandle] = {}

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        """Give each task whose version changed a fresh, started set of workers; retire the
        sets of changed and removed tasks (their running attempts finish there)."""
        fresh: list[_Workers] = []
        for unit in units:
            version = self._version(unit, endpoints)
            current = self._current.get(unit.name)
            if current is None or current.version != version:
                output = self.logs_dir / "workers" / f"{unit.name}.log"
                fresh.append(_Workers(unit.name, version, output))
        await asyncio.gather(*(workers.start() for workers in fresh))
        wanted = {unit.name for unit in units}
        for name in [n for n in self._current if n not in wanted]:
            self._retire(self._current.pop(name))
        for workers in fresh:
            old = self._current.get(workers.name)
            if old is not None:
                self._retire(old)
            self._current[workers.name] = workers

    def _version(self, unit: TaskUnit, endpoints: Mapping[str, str]) -> _Version:
        root = unit.bundle.root
        env = {**self.base_env, **unit_environment(self.context, unit, endpoints)}
        folder = self.secret_dir / f"task-{unit.name}"
        env.update(secret_environment(folder, unit.grants, unit.secrets))
        env["ENGINE_API_TOKEN"] = self.context.api_token
        env["PYTHONPATH"] = str(root)  # the spec's folder first; workers.py appends engine's
        size = max(1, unit.concurrency)
        return _Version(unit.hash, unit.handler, root, tuple(sorted(env.items())), size)

    def _retire(self, workers: _Workers) -> None:
        workers.retire()
        self._retired = [w for w in [*self._retired, workers] if not w.done]

    async def run(self, attempt: Attempt) -> AttemptResult:
        """Carry out `attempt` on an idle worker of its task's current version. Cancelling
        the call kills the worker's process group (and so what the handler started)."""
        while True:
            workers = self._current.get(attempt.task)
            if workers is None:
                error = f"task {attempt.task!r} is not configured"
                return AttemptResult(Outcome.FAILED, error=error)
            try:
                worker, spawned = await workers.take()
            except WorkerStartError as exc:
                return AttemptResult(Outcome.FAILED, error=str(exc))
            if not workers.retired:
                break
            workers.give_back(worker)  # a new version came while it started: use that
        self._handles[attempt.run_id] = AttemptHandle("local", f"{worker.pid}:{worker.start_time}")
        kept = False
        try:
            # Let the runner record the handle before the attempt can begin.
            await asyncio.sleep(_SPAWNED_PAUSE if spawned else 0)
            reply = await worker.run(self._job(attempt))
            kept = True
        except WorkerLost as exc:
            return AttemptResult(Outcome.LOST, error=str(exc))
        finally:
            del self._handles[attempt.run_id]
            if kept:
                workers.give_back(worker)
            else:  # lost, cancelled (timeout, cancel, stop) or broken: it must not go on
                workers.discard(worker)
        return _result(reply)

    def _job(self, attempt: Attempt) -> dict[str, Any]:
        env = {"ENGINE_RUN_ID": attempt.run_id}
        if attempt.run_url:
            env["ENGINE_RUN_URL"] = attempt.run_url
        log_path = attempt.log_path or str(self.logs_dir / f"{attempt.run_id}.log")
        return {"id": attempt.run_id, "inputs": dict(attempt.inputs), "log_path": log_path,
                "attempt": attempt.number, "env": env, "log_cap": self.log_cap,
                "result_path": str(result_path(log_path))}  # fmt: skip

    def handle(self, run_id: str) -> AttemptHandle | None:
        """`local:<pid>:<start time>` of the worker running `run_id`'s attempt, if any."""
        return self._handles.get(run_id)

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        """Wait for the worker at `handle` to finish `attempt` and return its result (read
        from the result file); None if the worker is gone without one. Cancelling the call
        kills that worker."""
        pid, start = _parse(handle)
        if pid is None or start is None or attempt.log_path is None:
            return None
        path = result_path(attempt.log_path)
        try:
            while procs.is_ours(pid, start):
                if (result := _read_result(path, attempt)) is not None:
                    break
                await asyncio.sleep(REATTACH_POLL)
            else:
                result = _read_result(path, attempt)
        except asyncio.CancelledError:
            kill_group(pid, start)
            raise
        _forget_result(attempt)
        return result

    async def close(self) -> None:
        """Kill every worker this executor started, and wait for them."""
        sets = [*self._current.values(), *self._retired]
        self._current, self._retired = {}, []
        await asyncio.gather(*(workers.close() for workers in sets))


def _parse(handle: AttemptHandle) -> tuple[int | None, int | None]:
    if handle.kind != "local":
        return None, None
    pid, _, start = handle.ref.partition(":")
    try:
        return int(pid), int(start)
    except ValueError:
        return None, None


def _result(reply: Mapping[str, Any]) -> AttemptResult:
    if reply.get("ok"):
        return AttemptResult(Outcome.SUCCEEDED, outputs=reply.get("outputs"))
    return AttemptResult(Outcome.FAILED, error=str(reply.get("error")))


def _read_result(path: Path, attempt: Attempt) -> AttemptResult | None:
    """The result the worker wrote for this very attempt, if it did."""
    try:
        reply = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if reply.get("id") != attempt.run_id or reply.get("attempt") != attempt.number:
        return None
    return _result(reply)


def _forget_result(attempt: Attempt) -> None:
    if attempt.log_path:
        with contextlib.suppress(OSError):
            os.unlink(result_path(attempt.log_path))
