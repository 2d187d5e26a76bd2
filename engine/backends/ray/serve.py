"""The Ray backend's apps: each one a Serve application, deployed declaratively.

Every deploy reads the cluster's whole Serve config, replaces this project's applications
of the level, keeps everything else (other projects' applications, this project's other
levels) exactly as declared, and PUTs the whole set. A version that fails (DEPLOY_FAILED,
or not RUNNING and healthy in time) is reported `failed` with Serve's message, and the
last good config is sent back: Serve's old replicas kept serving meanwhile, and the
declared config is the good one again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from engine.backends.base import AppUnit, Deployed, DeployedState, ProjectContext
from engine.backends.ray.config import (
    HASH_VARIABLE,
    INGRESS,
    Cluster,
    application,
    package,
    serve_config,
)
from engine.backends.ray.dashboard import Dashboard, RayError
from engine.backends.ray.node import reap_idle_workers
from engine.backends.ray.secretfile import remove_secrets, write_secrets

_STATES = {
    "RUNNING": DeployedState.RUNNING,
    "NOT_STARTED": DeployedState.STARTING,
    "DEPLOYING": DeployedState.STARTING,
    "UNHEALTHY": DeployedState.UNHEALTHY,
    "DEPLOY_FAILED": DeployedState.FAILED,
    "DELETING": DeployedState.STOPPED,
}
_POLL = 0.25


def _hash(config: Mapping[str, Any] | None) -> str:
    env = ((config or {}).get("runtime_env") or {}).get("env_vars") or {}
    return str(env.get(HASH_VARIABLE, ""))


def _same(declared: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether Serve already declares `desired` (it may add keys of its own)."""
    return declared is not None and all(declared.get(k) == v for k, v in desired.items())


class RayBackend:
    """Runs a project's apps as Serve applications named `<project>.<app>`."""

    name = "ray"
    stable_endpoints = True

    def __init__(self, cluster: Cluster, context: ProjectContext, dashboard: Dashboard) -> None:
        self._cluster = cluster
        self._context = context
        self._dashboard = dashboard
        self._health = httpx.AsyncClient(timeout=5.0)
        self._packages: dict[str, set[str]] = {}  # app -> every package declared for it

    async def _applications(self) -> dict[str, dict[str, Any]]:
        details = await self._dashboard.serve_details()
        return dict(details.get("applications") or {})

    async def observe(self) -> dict[str, Deployed]:
        """This project's Serve applications, by app name, with the hash each serves."""
        found = {}
        for serve_name, app in (await self._applications()).items():
            name = self._cluster.owns(serve_name)
            if name is None:
                continue
            state = _STATES.get(str(app.get("status")), DeployedState.UNHEALTHY)
            url = self._cluster.endpoint(name)
            detail = str(app.get("message") or "")
            found[name] = Deployed(name, _hash(app.get("deployed_app_config")), state, url, detail)
        return found

    async def deploy(
        self, units: Sequence[AppUnit], endpoints: Mapping[str, str], timeout: float
    ) -> dict[str, Deployed]:
        """Declare `units` beside everything else Serve runs; wait for RUNNING and healthy."""
        current = await self._applications()
        declared = {n: a["deployed_app_config"] for n, a in current.items() if _declared(a)}
        desired = dict(declared)
        for unit in units:
            desired[self._cluster.app_name(unit.name)] = await self._prepare(unit, endpoints)
        changed = [u for u in units if not _same(declared.get(self._sn(u)), desired[self._sn(u)])]
        started = time.time()
        if changed:
            try:
                await self._dashboard.put_serve_config(self._config(desired))
            except RayError as exc:  # refused whole (e.g. a route prefix taken): nothing changed
                why = f"the Serve config was not accepted: {exc}"
                return {u.name: self._failed(u, why) for u in units}
        results = await self._wait(units, {u.name for u in changed}, started, timeout)
        failed = [u for u in units if not results[u.name].ok]
        if failed:
            restore = dict(desired)
            for unit in failed:
                restore.pop(self._sn(unit))
                good = current.get(self._sn(unit))
                if good is not None and _declared(good) and good.get("status") == "RUNNING":
                    restore[self._sn(unit)] = good["deployed_app_config"]
            await self._dashboard.put_serve_config(self._config(restore))
            # A replica that failed to start can leave an idle worker in the new package.
            await _reap({desired[self._sn(u)]["runtime_env"]["working_dir"] for u in failed})
        return results

    async def _prepare(self, unit: AppUnit, endpoints: Mapping[str, str]) -> dict[str, Any]:
        uri, data = package(self._cluster.project, unit)
        await self._dashboard.ensure_package(uri, data)
        self._packages.setdefault(unit.name, set()).add(uri)
        extra = {"ENGINE_API_TOKEN": self._context.api_token}
        write_secrets(self._cluster.secrets_dir, unit, extra)
        return application(self._cluster, self._context, unit, endpoints, uri)

    def _sn(self, unit: AppUnit) -> str:
        return self._cluster.app_name(unit.name)

    def _config(self, applications: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        return serve_config(self._cluster, list(applications.values()))

    async def _wait(
        self, units: Sequence[AppUnit], changed: set[str], started: float, timeout: float
    ) -> dict[str, Deployed]:
        """Each unit's outcome: RUNNING with its hash and its health route answering."""
        deadline = time.monotonic() + timeout
        results: dict[str, Deployed] = {}
        while True:
            apps = await self._applications()
            for unit in units:
                if unit.name not in results:
                    app = apps.get(self._sn(unit)) or {}
                    done = await self._outcome(unit, app, unit.name in changed, started)
                    if done is not None:
                        results[unit.name] = done
            if len(results) == len(units):
                return results
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL)
        for unit in units:
            if unit.name not in results:
                app = apps.get(self._sn(unit)) or {}
                status = app.get("status", "absent")
                why = f"not RUNNING and healthy within {timeout:g} s (Serve: {status})"
                results[unit.name] = self._failed(unit, f"{why}\n{app.get('message') or ''}")
        return results

    async def _outcome(
        self, unit: AppUnit, app: Mapping[str, Any], changed: bool, started: float
    ) -> Deployed | None:
        config = app.get("deployed_app_config")
        fresh = not changed or float(app.get("last_deployed_time_s") or 0) >= started - 1
        if _hash(config) != unit.hash or not fresh:
            return None  # Serve has not taken the new config in yet
        status = app.get("status")
        if status == "DEPLOY_FAILED":
            return self._failed(unit, str(app.get("message") or "DEPLOY_FAILED"))
        if status != "RUNNING" or not await self._healthy(unit):
            return None
        url = self._cluster.endpoint(unit.name)
        return Deployed(unit.name, unit.hash, DeployedState.RUNNING, url)

    def _failed(self, unit: AppUnit, detail: str) -> Deployed:
        url = self._cluster.endpoint(unit.name)
        return Deployed(unit.name, unit.hash, DeployedState.FAILED, url, detail.strip())

    async def _healthy(self, unit: AppUnit) -> bool:
        try:
            response = await self._health.get(self._cluster.endpoint(unit.name) + unit.health)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def remove(self, names: Sequence[str]) -> None:
        """Drop these apps from the declared config (others' stay) and wait until gone;
        then end the idle workers Ray keeps in their working dirs on this node."""
        serve_names = {self._cluster.app_name(n) for n in names}
        current = await self._applications()
        packages = {uri for name in names for uri in self._packages.pop(name, set())}
        for name in serve_names & set(current):
            config = current[name].get("deployed_app_config") or {}
            packages.add(str((config.get("runtime_env") or {}).get("working_dir", "")))
        if serve_names & set(current):
            keep = {n: a["deployed_app_config"] for n, a in current.items() if _declared(a)}
            for name in serve_names:
                keep.pop(name, None)
            await self._dashboard.put_serve_config(self._config(keep))
            deadline = time.monotonic() + 60
            while serve_names & set(await self._applications()):
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(_POLL)
        for name in names:
            remove_secrets(self._cluster.secrets_dir, "app", name)
        await _reap(packages)

    async def _replicas(self, name: str) -> list[str]:
        app = (await self._applications()).get(self._cluster.app_name(name)) or {}
        deployment = (app.get("deployments") or {}).get(INGRESS) or {}
        return [str(r["actor_id"]) for r in deployment.get("replicas") or [] if r.get("actor_id")]

    async def logs(self, name: str, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """Each replica's stderr and stdout (what the app logs and prints), then new lines;
        each line ends with a newline, as the local backend's do."""
        replicas = await self._replicas(name)
        lines: list[str] = []
        for actor in replicas:
            for suffix in ("err", "out"):
                text = await self._dashboard.actor_log(actor, suffix, tail)
                lines += [line for line in text.splitlines() if _shown(line)]
        for line in lines[-tail:] if tail > 0 else []:
            yield line + "\n"
        if follow:
            async for line in _merge(self._dashboard, replicas):
                if _shown(line):
                    yield line + "\n"

    async def close(self) -> None:
        """Close the HTTP clients; the apps keep running."""
        await self._health.aclose()
        await self._dashboard.close()


async def _reap(packages: set[str]) -> None:
    """End idle workers in these packages, again a moment later when more reach the pool."""
    for _ in range(3):
        reap_idle_workers(packages)
        await asyncio.sleep(0.5)


def _shown(line: str) -> bool:
    """A log line of the app's, not one of Ray's `:job_id:`/`:actor_name:` markers."""
    return bool(line.strip()) and not line.startswith(":")


def _declared(app: Mapping[str, Any]) -> bool:
    """Whether an application was declared through the config (not deleting)."""
    return bool(app.get("deployed_app_config")) and app.get("status") != "DELETING"


async def _merge(dashboard: Dashboard, actors: list[str]) -> AsyncIterator[str]:
    """New log lines of every replica, as they come."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def pump(actor: str, suffix: str) -> None:
        async for line in dashboard.follow_actor_log(actor, suffix):
            await queue.put(line)

    tasks = [asyncio.create_task(pump(a, s)) for a in actors for s in ("err", "out")]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
