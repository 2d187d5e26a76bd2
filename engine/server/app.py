"""The per-project control plane: supervisor, runner, run API and console in one process.

It listens on 127.0.0.1 only. Everything under /api/v1 except /api/v1/health asks for the
project's token; the console's pages do not (a person opens them in a browser), and they
show no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from engine import __version__
from engine.backends import local
from engine.backends.base import Deployed, ProjectContext
from engine.backends.local.backend import LocalBackend
from engine.backends.local.launch import stopped_app_spec
from engine.errors import EngineError
from engine.events import ControlPlaneStatus, Status
from engine.layout import Layout
from engine.runs.api import make_router
from engine.runs.runner import Runner
from engine.server.apply import PROJECT_FILE, Applier
from engine.server.console import APP_LOG_TAIL, make_console_router, read_log_tail
from engine.server.launch import ControlPlaneAddress
from engine.server.leader import lead
from engine.server.metrics import install_metrics
from engine.server.routes import make_control_router
from engine.server.targets import open_target
from engine.state import State

log = logging.getLogger("engine.server")

APP_LOG_LINES = 200
"""Lines of an app's log its console page shows on a cluster target."""
SEEN_FOR = 5.0
"""Seconds a cluster's answer to `observe()` stands for the console's pages, which poll."""


class ControlPlane:
    """The parts of a running control plane, and what ties them together."""

    def __init__(
        self, layout: Layout, api: ControlPlaneAddress, spec_path: Path | None = None
    ) -> None:
        self.layout = layout
        self.api = api
        self.target = layout.target
        layout.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state = State(layout.dir)
        context = ProjectContext(self.project, layout.root, api.url, api.token)
        applied = self._project().get("spec_path")
        spec = spec_path or (Path(applied) if applied else None)
        opened = open_target(layout, self.state, context, spec)
        self.backend, self.executor, self.store = opened.backend, opened.executor, opened.store
        self.runner = Runner(self.store, self.executor, layout.run_logs, api.url)
        self.applier = Applier(
            layout, self.state, self.backend, self.runner, api, target=self.target
        )
        self.seen: tuple[Deployed, ...] = ()
        self._seen_at = float("-inf")
        self._observing = asyncio.Lock()
        self.shutdown: asyncio.Event = asyncio.Event()

    @property
    def project(self) -> str:
        """The project's name, as last applied (the folder's name before that)."""
        return self._project().get("project", self.layout.root.name)

    def _project(self) -> dict[str, Any]:
        try:
            return json.loads((self.layout.dir / PROJECT_FILE).read_text())
        except (OSError, ValueError):
            return {}

    async def recover(self) -> None:
        """Adopt the apps an earlier control plane started; restart the ones that died.

        A cluster target's apps run on without us: only their tasks are configured again.
        """
        records = self.state.apps()
        spec_path = self._project().get("spec_path")
        if not spec_path:
            return
        if not isinstance(self.backend, LocalBackend):
            await self._configure_tasks(Path(spec_path))
            return
        environ = dict(os.environ)
        reason = ""
        try:
            prepared = await asyncio.to_thread(self.applier.prepare, Path(spec_path), environ)
        except EngineError as exc:
            log.warning("cannot load %s to restart apps: %s", spec_path, exc)
            prepared, reason = None, str(exc).splitlines()[0]
        order = {s.name: s.level for s in prepared.plan.steps} if prepared else {}
        endpoints = {r.name: r.url for r in records if r.url}
        for record in sorted(records, key=lambda r: (order.get(r.name, 0), r.name)):
            if prepared and record.name in prepared.units.apps:
                unit = prepared.units.apps[record.name]
                spec = self.backend.process_spec(unit, endpoints)
                # Recorded under the hash it was started with: a spec edited since then
                # shows up as a change in the next plan, not as already applied.
                spec = dataclasses.replace(spec, hash=record.hash)
            else:
                why = reason if prepared is None else "it is no longer in the spec"
                spec = stopped_app_spec(record.name, why, record.hash, self.layout.root)
            await self.backend.adopt(record, spec)
        if prepared:
            await self.applier.configure_tasks(prepared, environ, endpoints)

    async def _configure_tasks(self, spec_path: Path) -> None:
        environ = dict(os.environ)
        try:
            prepared = await asyncio.to_thread(self.applier.prepare, spec_path, environ)
        except EngineError as exc:
            log.warning("cannot load %s to configure tasks: %s", spec_path, exc)
            return
        deployed = await self.backend.observe()
        endpoints = {n: d.url for n, d in deployed.items() if d.url}
        await self.applier.configure_tasks(prepared, environ, endpoints)

    async def status(self) -> Status:
        """What `engine status --json` prints."""
        await self._observe()
        plane = ControlPlaneStatus(self.api.url, os.getpid())
        return Status(self.project, self.target, plane, self.seen)

    async def _observe(self) -> None:
        observed = await self.backend.observe()
        self.seen = tuple(sorted(observed.values(), key=lambda d: d.name))
        self._seen_at = time.monotonic()

    async def apps(self) -> list[dict[str, object]]:
        """The apps, for the console's pages: the local backend's live, a cluster's as it
        answered within the last `SEEN_FOR` seconds (asked again when older, so pages that
        poll every 1.5 s ask the cluster's API at most once per `SEEN_FOR`)."""
        if isinstance(self.backend, LocalBackend):
            return [d.to_dict() for d in self.backend.deployed()]
        async with self._observing:  # pages polling at once ask the cluster once
            if time.monotonic() - self._seen_at >= SEEN_FOR:
                try:
                    await self._observe()
                except EngineError as exc:  # the cluster's API is away: show what it last said
                    log.warning("cannot observe the %s apps: %s", self.target, exc)
                    self._seen_at = time.monotonic()
        return [d.to_dict() for d in self.seen]

    async def app_log(self, name: str) -> str:
        """The end of an app's log, for its console page."""
        if isinstance(self.backend, LocalBackend):  # read the file's end, not all of it
            path = str(self.layout.logs / f"{name}.log")
            tail = await asyncio.to_thread(read_log_tail, path, 0, APP_LOG_TAIL)
            return str(tail["text"])
        return "".join([line async for line in self.backend.logs(name, APP_LOG_LINES)])

    async def destroy(self) -> None:
        """Stop every app and the runner, forget them, and let the process exit."""
        if isinstance(self.backend, LocalBackend):
            await self.backend.stop_all()
        else:
            await self.backend.remove(sorted(await self.backend.observe()))
        for record in self.state.apps():
            self.state.delete_app(record.name)
        for name in list(self.state.tasks()):
            self.state.delete_task(name)
        await self.runner.configure([], {})
        purge = getattr(self.executor, "purge", None)  # a cluster's jobs the runner lost track of
        if purge is not None:
            await purge()
        # What outlived its process group (a task's child that called setsid, say).
        await asyncio.to_thread(local.stop_marked, self.layout)
        (self.layout.dir / PROJECT_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.layout.secret_files, ignore_errors=True)  # secrets granted as files
        self.shutdown.set()


def create_control_plane(
    layout: Layout, api: ControlPlaneAddress, spec_path: Path | None = None
) -> FastAPI:
    """The control plane's ASGI app for the project in `layout` (on `layout.target`)."""
    plane = ControlPlane(layout, api, spec_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.recover()
        leader = asyncio.create_task(lead(plane.runner, plane.store), name="runner-lead")
        try:
            yield
        finally:
            leader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader
            await plane.runner.stop()
            await plane.executor.close()
            await plane.backend.close()
            await plane.store.close()
            plane.state.close()

    app = FastAPI(
        title=f"{plane.project} · engine control plane",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    app.state.plane = plane
    install_metrics(app, plane.store.unfinished, plane.apps)
    app.include_router(make_control_router(plane, api.token))
    app.include_router(make_router(plane.runner, plane.store, token=api.token, base_url=api.url))
    app.include_router(
        make_console_router(
            project=lambda: plane.project,
            apps=plane.apps,
            store=plane.store,
            token=api.token,
            runner=plane.runner,
            spec=lambda: plane.applier.spec,
            app_log=plane.app_log,
        )
    )
    return app
