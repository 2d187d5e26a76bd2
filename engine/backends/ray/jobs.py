"""The Ray backend's task attempts: one Ray job per attempt, through the Jobs API.

A job's submission id is derived from the project, the run and the attempt number, so a
control plane that restarts and submits the same attempt again finds the job already
there and waits for it instead of starting a second one. The job prints its result as its
last line (`engine.backends.attempt.result_line`); its log is copied into the run's log
as it grows.
Cancelling `run()` stops the job and waits until Ray says it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.backends.attempt import RESULT_MARKER, result_of
from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Outcome,
    ProjectContext,
    TaskUnit,
)
from engine.backends.ray.config import Cluster, job_request, package, submission_id
from engine.backends.ray.dashboard import TERMINAL_JOB_STATES, Dashboard
from engine.backends.ray.node import reap_idle_workers
from engine.backends.ray.secretfile import write_secrets

HANDLE_KIND = "ray-job"
_POLL = 0.2
_LOG_EVERY = 5  # polls between copies of the job's log into the run's log


def _without_result(logs: str) -> str:
    return "".join(
        line for line in logs.splitlines(keepends=True) if not line.startswith(RESULT_MARKER)
    )


class RayJobExecutor:
    """Carries out task attempts as Ray jobs of one project."""

    name = "ray"

    def __init__(self, cluster: Cluster, context: ProjectContext, dashboard: Dashboard) -> None:
        self._cluster = cluster
        self._context = context
        self._dashboard = dashboard
        self._units: dict[str, TaskUnit] = {}
        self._packages: dict[str, tuple[str, bytes]] = {}
        self._endpoints: dict[str, str] = {}
        self._running: dict[str, str] = {}

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        """Upload each task's package and write its secrets file."""
        for unit in units:
            self._packages[unit.name] = package(self._cluster.project, unit)
            await self._dashboard.ensure_package(*self._packages[unit.name])
            extra = {"ENGINE_API_TOKEN": self._context.api_token}
            write_secrets(self._cluster.secrets_dir, unit, extra)
        self._units = {unit.name: unit for unit in units}
        self._endpoints = dict(endpoints)

    def _request(self, unit: TaskUnit, attempt: Attempt, submission: str) -> dict[str, Any]:
        env = {"ENGINE_RUN_ID": attempt.run_id, "ENGINE_ATTEMPT": str(attempt.number)}
        if attempt.run_url:
            env["ENGINE_RUN_URL"] = attempt.run_url
        uri = self._packages[unit.name][0]
        inputs = json.dumps(dict(attempt.inputs), sort_keys=True)
        return job_request(
            self._cluster, self._context, unit, self._endpoints, uri,
            submission=submission, inputs=inputs, extra_env=env,
        )  # fmt: skip

    async def run(self, attempt: Attempt) -> AttemptResult:
        """Submit the attempt's job (or find it, if already submitted) and wait for it."""
        unit = self._units.get(attempt.task)
        if unit is None:
            return AttemptResult(Outcome.FAILED, error=f"task {attempt.task!r} is not deployed")
        submission = submission_id(self._cluster.project, attempt.run_id, attempt.number)
        self._running[attempt.run_id] = submission
        try:
            # Ray collects a package nothing refers to: make sure it is there.
            await self._dashboard.ensure_package(*self._packages[unit.name])
            await self._dashboard.submit_job(self._request(unit, attempt, submission))
            return await self._wait(attempt, submission)
        finally:
            self._running.pop(attempt.run_id, None)

    def handle(self, run_id: str) -> AttemptHandle | None:
        """The Ray job of the attempt of `run_id`, while it runs."""
        submission = self._running.get(run_id)
        return None if submission is None else AttemptHandle(HANDLE_KIND, submission)

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        """Wait for the job at `handle`, or None if the cluster has no such job."""
        if handle.kind != HANDLE_KIND or await self._dashboard.job(handle.ref) is None:
            return None
        self._running[attempt.run_id] = handle.ref
        try:
            return await self._wait(attempt, handle.ref)
        finally:
            self._running.pop(attempt.run_id, None)

    async def _wait(self, attempt: Attempt, submission: str) -> AttemptResult:
        copied = 0
        try:
            polls = 0
            while True:
                job = await self._dashboard.job(submission)
                if job is None:
                    return AttemptResult(Outcome.LOST, error=f"Ray job {submission} is gone")
                if job.get("status") in TERMINAL_JOB_STATES:
                    break
                polls += 1
                if polls % _LOG_EVERY == 0:
                    copied = await self._copy_log(attempt, submission, copied)
                await asyncio.sleep(_POLL)
        except asyncio.CancelledError:
            await asyncio.shield(self._stop(submission))
            raise
        logs = await self._dashboard.job_logs(submission)
        self._append(attempt, _without_result(logs), copied)
        await self._dashboard.delete_job(submission)
        return _outcome(job, result_of(logs.splitlines()))

    async def _copy_log(self, attempt: Attempt, submission: str, copied: int) -> int:
        logs = _without_result(await self._dashboard.job_logs(submission))
        self._append(attempt, logs, copied)
        return len(logs)

    def _append(self, attempt: Attempt, logs: str, copied: int) -> None:
        if attempt.log_path is None or len(logs) <= copied:
            return
        path = Path(attempt.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(logs[copied:])

    async def _stop(self, submission: str, timeout: float = 30.0) -> None:
        """Stop the job and wait until Ray reports it ended; then forget it."""
        await self._dashboard.stop_job(submission)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            job = await self._dashboard.job(submission)
            if job is None or job.get("status") in TERMINAL_JOB_STATES:
                break
            await asyncio.sleep(_POLL)
        await self._dashboard.delete_job(submission)

    async def purge(self) -> None:
        """Stop and forget every job of this project (for `engine destroy`)."""
        for job in await self._dashboard.jobs():
            meta = job.get("metadata") or {}
            submission = job.get("submission_id")
            if submission and meta.get("engine_project") == self._cluster.project:
                await self._stop(str(submission))
        reap_idle_workers(uri for uri, _ in self._packages.values())

    async def close(self) -> None:
        """Stop every job this executor started that still runs; close the client."""
        for submission in list(self._running.values()):
            with contextlib.suppress(Exception):
                await self._stop(submission)
        await self._dashboard.close()


def _outcome(job: Mapping[str, Any], result: Mapping[str, Any] | None) -> AttemptResult:
    if result is not None and result.get("ok"):
        return AttemptResult(Outcome.SUCCEEDED, outputs=result.get("outputs"))
    if result is not None:
        return AttemptResult(Outcome.FAILED, error=str(result.get("error")))
    message = str(job.get("message") or "").strip().splitlines()
    why = message[-1] if message else "it printed no result"
    return AttemptResult(Outcome.FAILED, error=f"Ray job {job.get('status')}: {why}")
