"""The control plane's own API, behind the project's token: status, plan, apply, destroy,
app logs and the tasks' input schemas.

    GET  /api/v1/health                  {"status": "healthy"} (no token)
    GET  /api/v1/status                  what `engine status --json` prints
    POST /api/v1/plan                    the plan apply would carry out now (or 422 errors)
    POST /api/v1/apply                   converge; the answer streams apply events as JSON lines
    POST /api/v1/destroy                 stop every app, then the control plane
    GET  /api/v1/apps/{name}/logs        an app's log (`?tail=`, `?follow=`), text/plain
    GET  /api/v1/tasks                   each task's name and input schema
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from engine.errors import EngineError, SpecError
from engine.events import ApplyEvent, ErrorEvent, to_json
from engine.runs.api import require_token
from engine.server.guard import foreign_spec_problem
from engine.tail import tail_lines

if TYPE_CHECKING:
    from engine.server.app import ControlPlane

log = logging.getLogger("engine.server")

CONTROL_PLANE_LOG = "control-plane"
"""The name under which `GET /api/v1/apps/{name}/logs` serves the engine's own log."""


class SpecRequest(BaseModel):
    """A spec to plan, as the CLI sends it."""

    spec_path: str
    spec_label: str | None = None
    environ: dict[str, str] = Field(default_factory=dict)


class ApplyRequest(SpecRequest):
    """What the CLI sends to apply a spec (or a saved plan, as `expect`)."""

    expect: dict[str, Any] | None = None
    health_timeout: float = 30.0


def make_control_router(plane: ControlPlane, token: str) -> APIRouter:
    """The control plane's routes; all but /health ask for `token`."""
    router = APIRouter(prefix="/api/v1", tags=["control plane"])
    guard = [Depends(require_token(token))]

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Readiness of the control plane (no token needed)."""
        return {"status": "healthy"}

    @router.get("/status", dependencies=guard)
    async def status() -> dict[str, Any]:
        """The project's apps: state, URL, port, pid and restarts."""
        return (await plane.status()).to_json()

    @router.post("/plan", dependencies=guard, responses={422: {"description": "Bad spec."}})
    async def plan(request: SpecRequest) -> dict[str, Any]:
        """What apply would do now: the same planner, against the running system."""
        if problem := foreign_spec_problem(plane.layout.root, request.spec_path):
            raise HTTPException(403, problem)
        path, environ = Path(request.spec_path), request.environ
        try:
            prepared = await asyncio.to_thread(
                plane.applier.prepare, path, environ, request.spec_label
            )
        except SpecError as exc:
            raise HTTPException(422, [str(d) for d in exc.diagnostics]) from exc
        except EngineError as exc:
            raise HTTPException(422, [str(exc)]) from exc
        return {"plan": prepared.plan.to_dict(), "warnings": list(prepared.warnings)}

    @router.post("/apply", dependencies=guard)
    async def apply(request: ApplyRequest) -> StreamingResponse:
        """Converge to a spec; the answer streams progress as JSON lines."""
        if problem := foreign_spec_problem(plane.layout.root, request.spec_path):
            raise HTTPException(403, problem)
        return StreamingResponse(_apply_events(plane, request), media_type="application/x-ndjson")

    @router.post("/destroy", dependencies=guard)
    async def destroy() -> dict[str, str]:
        """Stop every app, then the control plane itself."""
        await plane.destroy()
        return {"status": "destroyed"}

    @router.get("/apps/{name}/logs", dependencies=guard, responses={404: {}})
    async def app_logs(
        name: str,
        tail: Annotated[int, Query(ge=0, le=100_000, description="Lines to show.")] = 100,
        follow: Annotated[bool, Query(description="Keep sending new lines.")] = False,
    ) -> StreamingResponse:
        """An app's log (stdout and stderr); `control-plane` is the engine's own."""
        known = set(await plane.backend.observe())
        lines = _log_lines(plane, known, name, tail, follow)
        return StreamingResponse(lines, media_type="text/plain; charset=utf-8")

    @router.get("/tasks", dependencies=guard)
    async def tasks() -> dict[str, Any]:
        """Each configured task with the JSON Schema of its inputs."""
        configured = plane.runner.tasks
        return {
            "tasks": [
                {"name": name, "input_schema": configured[name].input_schema}
                for name in sorted(configured)
            ]
        }

    return router


def _log_lines(
    plane: ControlPlane, known: set[str], name: str, tail: int, follow: bool
) -> AsyncIterator[str]:
    """The lines of app `name`'s log; 404 naming the apps there are."""
    if name == CONTROL_PLANE_LOG:
        return tail_lines(plane.layout.control_plane_log, tail, follow)
    if name not in known:
        names = ", ".join(sorted(known)) or "none"
        raise HTTPException(
            404,
            f"no app {name!r}; the apps are: {names} "
            f"(and {CONTROL_PLANE_LOG!r} for the engine's own log)",
        )
    return plane.backend.logs(name, tail, follow)


async def _apply_events(plane: ControlPlane, request: ApplyRequest) -> AsyncIterator[bytes]:
    """Run the apply in its own task (it finishes even if the CLI goes away); stream events."""
    events: asyncio.Queue[ApplyEvent | None] = asyncio.Queue()

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
            await events.put(ErrorEvent((f"internal error: {exc}",)))
        finally:
            await events.put(None)

    task = asyncio.create_task(run())
    while (event := await events.get()) is not None:
        yield (json.dumps(to_json(event)) + "\n").encode()
    await task
