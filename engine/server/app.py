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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from engine import __version__
from engine.backends.base import ProjectContext
from engine.backends.local.tasks import LocalTaskExecutor
from engine.errors import EngineError
from engine.layout import Layout
from engine.runs.api import make_router, require_token
from engine.runs.runner import Runner
from engine.runs.store import open_store
from engine.server.apply import PROJECT_FILE, Applier, prepare, stopped_app_spec
from engine.server.console import make_console_router
from engine.server.launch import ControlPlaneAddress, base_env
from engine.server.supervisor import Supervisor
from engine.state import State

log = logging.getLogger("engine.server")


class ApplyRequest(BaseModel):
    """What the CLI sends to apply a spec."""

    spec_path: str
    spec_label: str | None = None
    environ: dict[str, str] = Field(default_factory=dict)
    expect: dict[str, Any] | None = None
    health_timeout: float = 30.0


class ControlPlane:
    """The parts of a running control plane, and what ties them together."""

    def __init__(self, layout: Layout, api: ControlPlaneAddress) -> None:
        self.layout = layout
        self.api = api
        layout.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state = State(layout.dir)
        self.store = open_store("", layout.dir / "runs.db")
        context = ProjectContext(self.project, layout.root, api.url, api.token)
        self.executor = LocalTaskExecutor(
            context, base_env(os.environ), layout.run_logs, layout.secret_files
        )
        self.runner = Runner(self.store, self.executor, layout.run_logs, api.url)
        self.supervisor = Supervisor(self.state, layout.logs)
        self.applier = Applier(layout, self.state, self.supervisor, self.runner, self.executor, api)
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
        """Adopt the apps an earlier control plane started; restart the ones that died."""
        records = self.state.apps()
        spec_path = self._project().get("spec_path")
        if not spec_path:
            return
        environ = dict(os.environ)
        reason = ""
        try:
            prepared = prepare(Path(spec_path), environ, self.state)
        except EngineError as exc:
            log.warning("cannot load %s to restart apps: %s", spec_path, exc)
            prepared, reason = None, str(exc).splitlines()[0]
        order = {s.name: s.level for s in prepared.plan.steps} if prepared else {}
        for record in sorted(records, key=lambda r: (order.get(r.name, 0), r.name)):
            if prepared and record.name in prepared.build.spec.apps:
                spec = self.applier.process_spec(prepared, record.name, environ, 30.0)
                # Recorded under the hash it was started with: a spec edited since then
                # shows up as a change in the next plan, not as already applied.
                spec = dataclasses.replace(spec, hash=record.hash)
            else:
                why = reason if prepared is None else "it is no longer in the spec"
                spec = stopped_app_spec(record.name, why, record.hash, self.layout.root)
            await self.supervisor.adopt(record, spec)
        if prepared:
            await self.applier.configure_tasks(prepared, environ)

    def status(self) -> dict[str, Any]:
        """What `engine status --json` prints."""
        return {
            "project": self.project,
            "control_plane": {"url": self.api.url, "pid": os.getpid()},
            "apps": self.supervisor.status(),
        }

    async def destroy(self) -> None:
        """Stop every app and the runner, forget them, and let the process exit."""
        await self.supervisor.stop_all()
        for record in self.state.apps():
            self.state.delete_app(record.name)
        for name in list(self.state.tasks()):
            self.state.delete_task(name)
        await self.runner.configure([], {})
        (self.layout.dir / PROJECT_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.layout.secret_files, ignore_errors=True)  # secrets granted as files
        self.shutdown.set()


def create_control_plane(layout: Layout, api: ControlPlaneAddress) -> FastAPI:
    """The control plane's ASGI app for the project in `layout`."""
    plane = ControlPlane(layout, api)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.recover()
        await plane.runner.start()
        try:
            yield
        finally:
            await plane.runner.stop()
            await plane.executor.close()
            await plane.supervisor.aclose()
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
    guard = [Depends(require_token(api.token))]

    @app.get("/api/v1/health", tags=["control plane"])
    async def health() -> dict[str, str]:
        """Readiness of the control plane (no token needed)."""
        return {"status": "healthy"}

    @app.get("/api/v1/status", tags=["control plane"], dependencies=guard)
    async def status() -> dict[str, Any]:
        """The project's apps: state, URL, port, pid and restarts."""
        return plane.status()

    @app.post("/api/v1/apply", tags=["control plane"], dependencies=guard)
    async def apply(request: ApplyRequest) -> StreamingResponse:
        """Converge to a spec; the answer streams progress as JSON lines."""
        return StreamingResponse(_apply_events(plane, request), media_type="application/x-ndjson")

    @app.post("/api/v1/destroy", tags=["control plane"], dependencies=guard)
    async def destroy() -> dict[str, str]:
        """Stop every app, then the control plane itself."""
        await plane.destroy()
        return {"status": "destroyed"}

    app.include_router(make_router(plane.runner, plane.store, token=api.token, base_url=api.url))
    app.include_router(
        make_console_router(
            project=lambda: plane.project,
            apps=plane.supervisor.status,
            store=plane.store,
            token=api.token,
        )
    )
    return app


async def _apply_events(plane: ControlPlane, request: ApplyRequest) -> AsyncIterator[bytes]:
    """Run the apply in its own task (it finishes even if the CLI goes away); stream events."""
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await plane.applier.apply(
                Path(request.spec_path),
                request.environ,
                events.put,
                label=request.spec_label,
                expect=request.expect,
                health_timeout=request.health_timeout,
            )
        except Exception as exc:  # reported to the CLI, and logged with its traceback
            log.exception("apply failed")
            await events.put({"event": "error", "errors": [f"internal error: {exc}"]})
        finally:
            await events.put(None)

    task = asyncio.create_task(run())
    while (event := await events.get()) is not None:
        yield (json.dumps(event) + "\n").encode()
    await task
