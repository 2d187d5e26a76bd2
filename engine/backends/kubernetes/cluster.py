"""KubernetesBackend: one dependency level at a time, applied server-side, then waited on.

    deploy(level):  parent + Secrets, then per app its bundle, Service and Deployment
                    (server-side apply); wait until every Deployment is Available on
                    its new template; then prune the apps' old bundles and unused Secrets.

A rollout that fails (its progress deadline passed, or a new pod stuck: crash loop, image
pull, bad config, a failed unpack) comes back `failed` with the pod's reason and log tail.
The rolling update never takes an old pod down before a new one is ready, so the old
ReplicaSet keeps serving; its bundle is kept too (only a finished rollout prunes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

from engine.backends.base import AppUnit, Deployed, DeployedState, ProjectContext
from engine.backends.kubernetes import names as n
from engine.backends.kubernetes import status
from engine.backends.kubernetes.api import Cluster, Obj
from engine.backends.kubernetes.applyset import ApplySet
from engine.backends.kubernetes.manifests import Site, app_objects


class KubernetesBackend:
    """Runs a project's apps as Deployments behind Services in one namespace."""

    name = "kubernetes"
    stable_endpoints = True
    """A Service's DNS name outlives every pod behind it."""

    def __init__(
        self, cluster: Cluster, site: Site, context: ProjectContext, poll: float = 1.0
    ) -> None:
        self.cluster = cluster
        self.site = site
        self.members = ApplySet(cluster, site, context)
        self.context = context
        self.poll = poll

    def url(self, app: str) -> str:
        """The app's endpoint inside the cluster."""
        return n.service_url(app, self.site.namespace)

    async def deploy(
        self, units: Sequence[AppUnit], endpoints: Mapping[str, str], timeout: float
    ) -> dict[str, Deployed]:
        """Apply one level and wait (up to `timeout` s) for each Deployment to roll out.
        Endpoints are the Services' names, so `endpoints` is not needed. An app whose
        Deployment or Service name is taken by an object not of this project is refused."""
        refused = await self._refused(units)
        units = [u for u in units if u.name not in refused]
        if not units:
            return refused
        await self.members.apply_secrets(units)
        bundles = {}
        for unit in units:
            objects = app_objects(self.site, unit, self.context)
            bundles[unit.name] = objects[0]["metadata"]["name"]
            await self.members.apply(objects)
        deadline = time.monotonic() + timeout
        results = await asyncio.gather(*(self._rollout(u, deadline, timeout) for u in units))
        for unit, result in zip(units, results, strict=True):
            if result.ok:
                await self.members.prune_bundles("app", unit.name, {bundles[unit.name]})
        await self.members.prune_secrets()
        return refused | {r.name: r for r in results}

    async def _refused(self, units: Sequence[AppUnit]) -> dict[str, Deployed]:
        namespace = self.site.namespace
        neighbour = await self.members.neighbour()
        if neighbour is not None:
            why = (f"namespace {namespace!r} already holds engine project {neighbour!r}; "
                   "give each project its own namespace")  # fmt: skip
            return {u.name: self._not_applied(u, why) for u in units}
        refused = {}
        for unit in units:
            taken = [
                k for k in ("Deployment", "Service") if await self.members.foreign(k, unit.name)
            ]
            if taken:
                why = (f"a {taken[0]} named {unit.name!r} in namespace {namespace!r} is not "
                       "this project's; rename the app, or remove that object")  # fmt: skip
                refused[unit.name] = self._not_applied(unit, why)
        return refused

    def _not_applied(self, unit: AppUnit, why: str) -> Deployed:
        detail = f"app {unit.name!r} was not applied: {why}"
        return Deployed(unit.name, "", DeployedState.FAILED, self.url(unit.name), detail)

    async def _rollout(self, unit: AppUnit, deadline: float, timeout: float) -> Deployed:
        while True:
            found = await self.cluster.get("Deployment", unit.name)
            if found is None:
                return self._failed(unit, "", "its Deployment disappeared during the rollout")
            if status.rolled_out(found) and self._serves(found, unit.hash):
                return Deployed(unit.name, unit.hash, DeployedState.RUNNING, self.url(unit.name))
            problem = await self._new_pod_problem(unit)
            if problem is not None:
                return self._failed(unit, await self._serving(unit.name), problem)
            exceeded = status.deadline_exceeded(found)
            if exceeded is not None:
                return self._failed(unit, await self._serving(unit.name), exceeded)
            if time.monotonic() >= deadline:
                why = f"not available after {timeout:g} s"
                return self._failed(unit, await self._serving(unit.name), why)
            await asyncio.sleep(self.poll)

    @staticmethod
    def _serves(deployment: Obj, hash: str) -> bool:
        template = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        return template.get(n.HASH) == hash

    async def _new_pod_problem(self, unit: AppUnit) -> str | None:
        """The reason (and log tail) of a pod of the new version that cannot come up."""
        labels = n.selector(self.site.project, unit.name, "app")
        labels[n.VERSION] = n.short(unit.hash)
        for pod in await self.cluster.select("Pod", labels):
            found = status.pod_problem(pod)
            if found is not None:
                container, reason = found
                tail = await self.cluster.log(pod["metadata"]["name"], container, 20)
                log = "\n".join(tail)
                return f"pod {pod['metadata']['name']}: {reason}" + (f"\n{log}" if log else "")
        return None

    async def _serving(self, app: str) -> str:
        """The hash of the newest ReplicaSet of `app` with available pods ('' if none)."""
        sets = await self.cluster.select("ReplicaSet", n.selector(self.site.project, app, "app"))
        live = [s for s in sets if (s.get("status") or {}).get("availableReplicas", 0) > 0]
        live.sort(key=_revision)
        if not live:
            return ""
        return str(
            (live[-1]["spec"]["template"]["metadata"].get("annotations") or {}).get(n.HASH, "")
        )

    def _failed(self, unit: AppUnit, serving: str, why: str) -> Deployed:
        kept = " (the old version keeps serving)" if serving else ""
        detail = f"app {unit.name!r} did not roll out{kept}: {why}"
        return Deployed(unit.name, serving, DeployedState.FAILED, self.url(unit.name), detail)

    async def observe(self) -> dict[str, Deployed]:
        """Every app's Deployment in the cluster, by the hash its available pods serve."""
        result = {}
        for found in await self.members.members("Deployment", component="app"):
            app = found["metadata"]["labels"][n.NAME]
            template = found["spec"]["template"]["metadata"].get("annotations") or {}
            wanted = template.get(n.HASH, "")
            if status.rolled_out(found):
                state, hash, detail = DeployedState.RUNNING, wanted, ""
            else:
                hash = await self._serving(app)
                exceeded = status.deadline_exceeded(found)
                state = DeployedState.STARTING
                detail = exceeded or ""
                if found["spec"].get("replicas", 1) == 0:
                    state = DeployedState.STOPPED
                elif exceeded:
                    state = DeployedState.UNHEALTHY if hash else DeployedState.FAILED
            result[app] = Deployed(app, hash, state, self.url(app), detail)
        return result

    async def remove(self, names: Sequence[str]) -> None:
        """Delete these apps' Deployments, Services and bundles, then unused Secrets."""
        for app in names:
            await self.cluster.delete("Deployment", app)
            await self.cluster.delete("Service", app)
            await self.members.prune_bundles("app", app, set())
        await self.members.prune_secrets()

    async def logs(self, name: str, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The log of the app's newest pod (its `app` container)."""
        pods = await self.cluster.select("Pod", n.selector(self.site.project, name, "app"))
        if not pods:
            return
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))["metadata"][
            "name"
        ]
        if not follow:
            for line in await self.cluster.log(pod, "app", tail):
                yield line
            return
        lines = self.cluster.follow(pod, "app", tail)
        while True:
            followed = await asyncio.to_thread(_next, lines)
            if followed is None:
                return
            yield followed

    async def close(self) -> None:
        """Nothing to release: apps keep running, and each call opened its own request."""


def _next(lines: Iterator[str]) -> str | None:
    return next(lines, None)


def _revision(replica_set: Obj) -> int:
    annotations = replica_set["metadata"].get("annotations") or {}
    return int(annotations.get("deployment.kubernetes.io/revision", "0"))
