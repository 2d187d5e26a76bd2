"""JobExecutor: each task attempt is one Kubernetes Job, found again by name after a restart.

    run(attempt)    apply the attempt's Job (its name comes from the run id and attempt, so
                    a second apply of the same attempt is the same Job), then poll it:
                      Complete                  -> succeeded, outputs from the pod's log
                      Failed                    -> failed, the handler's error (or the pod's)
                      Failed, DeadlineExceeded  -> raises TimeoutError (the runner's timeout)
                      gone                      -> lost
                      a pod stuck (image pull)  -> the Job is deleted, failed
    cancelled       the Job is deleted (its pod with it)

Jobs are not ApplySet members, so no apply prunes a running one; a finished Job stays for
`ttlSecondsAfterFinished` so its log can be read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

from engine.backends.attempt import result_of
from engine.backends.base import (
    Attempt,
    AttemptHandle,
    AttemptResult,
    Outcome,
    ProjectContext,
    TaskUnit,
)
from engine.backends.kubernetes import names as n
from engine.backends.kubernetes import status
from engine.backends.kubernetes.api import Cluster, Obj
from engine.backends.kubernetes.applyset import ApplySet
from engine.backends.kubernetes.manifests import Site, bundle, job
from engine.errors import ApplyError

HANDLE_KIND = "kubernetes-job"
MAX_INPUTS = 100 * 1024
"""Inputs travel in one environment variable, which Linux caps at 128 KiB."""
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class JobExecutor:
    """Carries out task attempts as Jobs in the project's namespace."""

    name = "kubernetes"

    def __init__(
        self, cluster: Cluster, site: Site, context: ProjectContext, poll: float = 1.0
    ) -> None:
        self.cluster = cluster
        self.site = site
        self.context = context
        self.members = ApplySet(cluster, site, context)
        self.poll = poll
        self._tasks: dict[str, tuple[TaskUnit, str]] = {}
        self._running: dict[str, str] = {}

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        """Apply the tasks' Secrets and bundles; prune the bundles of versions no longer
        here, except those of Jobs still running (a pod not yet started needs its own)."""
        neighbour = await self.members.neighbour()
        if neighbour is not None:
            raise ApplyError(
                f"namespace {self.site.namespace!r} already holds engine project {neighbour!r}; "
                "give each project its own namespace"
            )
        await self.members.apply_secrets(units)
        tasks = {}
        for unit in units:
            config = bundle(self.site, unit)
            await self.members.apply([config])
            tasks[unit.name] = (unit, config["metadata"]["name"])
        keep = {b for _, b in tasks.values()} | await self._bundles_in_use()
        await self.members.prune_bundles("task", None, keep)
        await self.members.prune_secrets()
        self._tasks = tasks

    async def _bundles_in_use(self) -> set[str]:
        """The bundle ConfigMaps of this project's Jobs that have not ended."""
        found = await self.cluster.select(
            "Job", {n.INSTANCE: self.site.project, n.COMPONENT: "task"}
        )
        return {
            volume["configMap"]["name"]
            for obj in found
            if status.job_end(obj) is None
            for volume in obj["spec"]["template"]["spec"].get("volumes", [])
            if "configMap" in volume
        }

    async def run(self, attempt: Attempt) -> AttemptResult:
        """Start the attempt's Job and wait for its end; cancelling deletes the Job."""
        known = self._tasks.get(attempt.task)
        if known is None:
            return AttemptResult(Outcome.FAILED, error=f"task {attempt.task!r} is not configured")
        unit, bundle_name = known
        size = len(json.dumps(dict(attempt.inputs)))
        if size > MAX_INPUTS:
            error = (f"the run's inputs are {size // 1024} KiB; a Kubernetes Job is given at "
                     f"most {MAX_INPUTS // 1024} KiB (ENGINE_RUN_INPUTS): pass a reference "
                     "to the data (a URL, an object key) instead")  # fmt: skip
            return AttemptResult(Outcome.FAILED, error=error)
        obj = job(self.site, unit, self.context, attempt, bundle_name)
        return await self._follow(attempt.run_id, obj["metadata"]["name"], obj)

    def handle(self, run_id: str) -> AttemptHandle | None:
        """The Job that runs `run_id`'s attempt now."""
        name = self._running.get(run_id)
        return AttemptHandle(HANDLE_KIND, name) if name else None

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        """Wait for the Job at `handle` again; None if it is not there."""
        if handle.kind != HANDLE_KIND or await self.cluster.get("Job", handle.ref) is None:
            return None
        return await self._follow(attempt.run_id, handle.ref)

    async def _follow(self, run_id: str, name: str, start: Obj | None = None) -> AttemptResult:
        # The handle is known before the Job exists: a crash right after the apply must
        # leave a handle that finds it.
        self._running[run_id] = name
        try:
            if start is not None:
                await self.cluster.apply(start)
            return await self._wait(name)
        except asyncio.CancelledError:
            await asyncio.shield(self.cluster.delete("Job", name))
            raise
        finally:
            self._running.pop(run_id, None)

    async def _wait(self, name: str) -> AttemptResult:
        while True:
            found = await self.cluster.get("Job", name)
            if found is None:
                return AttemptResult(Outcome.LOST, error=f"Job {name} disappeared")
            end = status.job_end(found)
            if end == "deadline":
                deadline = found["spec"].get("activeDeadlineSeconds")
                raise TimeoutError(f"Job {name} passed its deadline of {deadline} s")
            if end is not None:
                return await self._result(name, end == "complete")
            stuck = await self._stuck(name)
            if stuck is not None:
                await self.cluster.delete("Job", name)
                return AttemptResult(Outcome.FAILED, error=stuck)
            await asyncio.sleep(self.poll)

    async def _pods(self, name: str) -> list[Obj]:
        return await self.cluster.select("Pod", {JOB_NAME_LABEL: name})

    async def _stuck(self, name: str) -> str | None:
        for pod in await self._pods(name):
            found = status.pod_problem(pod)
            if found is not None:
                return f"the attempt's pod cannot start: {found[1]}"
        return None

    async def _result(self, name: str, complete: bool) -> AttemptResult:
        pods = await self._pods(name)
        for pod in pods:
            payload = result_of(await self.cluster.log(pod["metadata"]["name"], "task", 20))
            if payload is not None and payload.get("ok") and complete:
                return AttemptResult(Outcome.SUCCEEDED, outputs=payload.get("outputs"))
            if payload is not None and not payload.get("ok"):
                return AttemptResult(Outcome.FAILED, error=str(payload.get("error")))
        ended = [status.terminated(p, "task") for p in pods]
        why = next((e for e in ended if e), "its pod is gone")
        return AttemptResult(Outcome.FAILED, error=f"Job {name} ended without a result: {why}")

    async def close(self) -> None:
        """Jobs keep running: a restarted control plane reattaches to them by name."""
