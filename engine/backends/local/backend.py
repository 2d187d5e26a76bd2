"""The local backend: each app a supervised process group on this machine, on a held socket.

An app keeps its URL across replacements: the supervisor holds its listening socket and
hands it to each new version (see `serve.py`), so `stable_endpoints` is True and a
dependency's new version never restarts its dependents. (A `command:` app binds its own
port; without a fixed `port:` its URL changes when it is replaced, and the planner knows.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Mapping, Sequence

from engine.backends.base import AppUnit, Deployed, DeployedState, ProjectContext
from engine.backends.local.launch import app_process
from engine.backends.local.supervisor import ProcessSpec, Supervisor
from engine.errors import ApplyError
from engine.layout import Layout
from engine.state import AppRecord, State
from engine.tail import tail_lines

HEALTH_INTERVAL_VARIABLE = "ENGINE_HEALTH_INTERVAL"
"""Seconds between the health probes of a running app (default 5; three failures in a row
and the app is restarted)."""


def health_interval(environ: Mapping[str, str] = os.environ) -> float:
    """The probe interval the control plane was started with."""
    try:
        return max(0.1, float(environ.get(HEALTH_INTERVAL_VARIABLE, "5")))
    except ValueError:
        return 5.0


class LocalBackend:
    """Runs a project's apps as processes on this machine; see the module docstring."""

    name = "local"
    stable_endpoints = True

    def __init__(
        self,
        context: ProjectContext,
        layout: Layout,
        state: State,
        base_env: Mapping[str, str],
        supervisor: Supervisor | None = None,
    ) -> None:
        self.context = context
        self.layout = layout
        self.base_env = dict(base_env)
        self.supervisor = supervisor or Supervisor(
            state, layout.logs, health_interval=health_interval()
        )

    async def observe(self) -> dict[str, Deployed]:
        """Every supervised app as it runs now."""
        return {d.name: d for d in self.deployed()}

    def deployed(self) -> list[Deployed]:
        """Every supervised app, by name (synchronous: for status pages)."""
        return [_deployed(app, self.supervisor) for app in self.status()]

    def status(self) -> list[dict[str, object]]:
        """Each app as `engine status --json` shows it."""
        return self.supervisor.status()

    async def deploy(
        self, units: Sequence[AppUnit], endpoints: Mapping[str, str], timeout: float
    ) -> dict[str, Deployed]:
        """Start or replace each unit (concurrently), the old version serving meanwhile."""
        results = await asyncio.gather(*(self._deploy(u, endpoints, timeout) for u in units))
        return {d.name: d for d in results}

    async def _deploy(
        self, unit: AppUnit, endpoints: Mapping[str, str], timeout: float
    ) -> Deployed:
        spec = self.process_spec(unit, endpoints, timeout)
        ours = self.url(unit.name) == f"http://127.0.0.1:{unit.port}"
        if unit.port is not None and not ours and port_taken(unit.port):
            message = (
                f"port {unit.port} of app {unit.name!r} is in use by another program; "
                "stop that program or give the app another `port:`"
            )
            return Deployed(unit.name, unit.hash, DeployedState.FAILED, detail=message)
        try:
            await self.supervisor.replace(spec)  # starts an app it does not run yet
        except ApplyError as exc:
            return Deployed(unit.name, unit.hash, DeployedState.FAILED, detail=str(exc))
        self._prune_builds(unit.name, unit.hash)
        return (await self.observe())[unit.name]

    def process_spec(
        self, unit: AppUnit, endpoints: Mapping[str, str], timeout: float = 30.0
    ) -> ProcessSpec:
        """How to run `unit` now, given the current URL of every app."""
        return app_process(
            unit,
            context=self.context,
            layout=self.layout,
            base_env=self.base_env,
            endpoints=endpoints,
            health_timeout=timeout,
        )

    async def adopt(self, record: AppRecord, spec: ProcessSpec) -> None:
        """Take over an app an earlier control plane started (see `Supervisor.adopt`)."""
        await self.supervisor.adopt(record, spec)

    async def remove(self, names: Sequence[str]) -> None:
        """Stop these apps and forget them, with their build folders."""
        for name in names:
            await self.supervisor.remove(name)
            shutil.rmtree(self.layout.build / name, ignore_errors=True)

    async def stop_all(self) -> None:
        """Stop every app (destroy)."""
        await self.supervisor.stop_all()

    def logs(self, name: str, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The last `tail` lines of the app's log, then new ones as they come if `follow`."""
        return tail_lines(self.layout.logs / f"{name}.log", tail, follow)

    async def close(self) -> None:
        """Stop watching; the apps keep running, to be adopted by the next control plane."""
        await self.supervisor.aclose()

    def url(self, name: str) -> str | None:
        """The app's current URL, if it runs."""
        return next((str(a["url"]) for a in self.status() if a["name"] == name and a["url"]), None)

    def _prune_builds(self, name: str, current: str) -> None:
        """Remove the build folders of an app's versions that no longer run."""
        keep = self.layout.app_build(name, current)
        folder = self.layout.build / name
        for old in folder.iterdir() if folder.is_dir() else ():
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


def _deployed(app: Mapping[str, object], supervisor: Supervisor) -> Deployed:
    name = str(app["name"])
    port = app["port"]
    pid = app["pid"]
    restarts = app["restarts"]
    return Deployed(
        name=name,
        hash=supervisor.hash(name),
        state=DeployedState(str(app["state"])),
        url=str(app["url"]) if app["url"] else None,
        pid=pid if isinstance(pid, int) else None,
        port=port if isinstance(port, int) else None,
        restarts=restarts if isinstance(restarts, int) else 0,
        detail=supervisor.failure(name),  # why it last failed, if it did
    )


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
