"""The run API of the control plane, `/api/v1/runs`, behind the project's bearer token.

    POST /api/v1/runs                    201 run | 200 the run holding `key` | 404 | 422
    GET  /api/v1/runs?task=&status=&limit=   {"runs": [run, ...]} newest first
    GET  /api/v1/runs/{id}               run | 404
    GET  /api/v1/runs/{id}/wait?timeout= run, once finished or after `timeout` s (200 both)
    GET  /api/v1/runs/{id}/events        text/event-stream of `data: <run JSON>`, to a final state
    GET  /api/v1/runs/{id}/logs?offset=&limit=   the run's stdout/stderr (bytes offset..),
                                         text/plain, streamed; X-Log-Size: the file's size
    POST /api/v1/runs/{id}/cancel        run

A missing token answers 401, a wrong one 403. A 422 for inputs has FastAPI's error shape,
`loc` ending with the field: `{"detail": [{"loc": ["body", "inputs", "x"], ...}]}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import RunInputError
from engine.runs.errors import UnknownRunError, UnknownTaskError
from engine.runs.runner import Runner
from engine.runs.store import Run, RunStatus, RunStore
from engine.runtime.access import request_id

log = logging.getLogger("engine.runs")

MAX_WAIT = 300.0
"""Longest a `/wait` call holds the connection, in seconds; longer timeouts are capped."""

LOG_CHUNK = 64 * 1024
"""Bytes read from a run's log per chunk of a `/logs` answer (never the whole file)."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def run_json(run: Run, base_url: str) -> dict[str, Any]:
    """The run as the run API's JSON; times as ISO 8601 in UTC; `url` its console page."""
    return {
        "id": run.id,
        "task": run.task,
        "status": str(run.status),
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "attempts": run.attempts,
        "request_id": run.request_id,
        "url": f"{base_url.rstrip('/')}/runs/{run.id}",
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


_EXAMPLE_RUN: dict[str, Any] = {
    "id": "Xq3v9ZbT0kLm",
    "task": "add-one",
    "status": "succeeded",
    "inputs": {"x": 41},
    "outputs": {"y": 42},
    "error": None,
    "attempts": 1,
    "request_id": "3f2c9a7e1b5d4c60a8e9f1d2b3c4a5e6",
    "url": "http://127.0.0.1:8700/runs/Xq3v9ZbT0kLm",
    "created_at": "2025-01-01T12:00:00.000000+00:00",
    "started_at": "2025-01-01T12:00:00.010000+00:00",
    "finished_at": "2025-01-01T12:00:00.020000+00:00",
}


class RunRequest(BaseModel):
    """A request to start a run."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task": "add-one", "inputs": {"x": 41}}]}
    )

    task: str = Field(description="The task's name.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The task's inputs.")
    key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="An idempotency key (a webhook delivery id): while it is held, another "
        "request with the same task and key gets the first run back, answered 200.",
    )
    key_ttl: float | None = Field(
        None, gt=0, description="Seconds the key is held; without it, for good."
    )


class RunOut(BaseModel):
    """A run; times are ISO 8601 in UTC; `url` is its page in the console."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RUN]})

    id: str
    task: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
    inputs: dict[str, Any]
    outputs: Any
    error: str | None
    attempts: int
    request_id: str | None = Field(
        description="The X-Request-ID of the request that started it (an app's, passed on)."
    )
    url: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class RunList(BaseModel):
    """Runs, newest first."""

    runs: list[RunOut]


# Module-level: the dependency's annotation is a string (postponed evaluation), which
# FastAPI resolves against this module's globals, not a closure's locals.
_BEARER = HTTPBearer(auto_error=False, description="The project's ENGINE_API_TOKEN.")


def require_token(token: str) -> Any:
    """A dependency answering 401 without a bearer token and 403 with a wrong one."""
    expected = token.encode()

    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(403, "invalid token")

    return authenticate


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No run with this id."}}


def make_router(runner: Runner, store: RunStore, *, token: str, base_url: str) -> APIRouter:
    """The run API's routes, each requiring `Authorization: Bearer <token>`."""
    router = APIRouter(
        prefix="/api/v1/runs",
        tags=["runs"],
        dependencies=[Depends(require_token(token))],
        responses={401: {"description": "No bearer token."}, 403: {"description": "Wrong token."}},
    )

    def as_json(run: Run) -> dict[str, Any]:
        return run_json(run, base_url)

    async def existing(run_id: str) -> Run:
        run = await store.get(run_id)
        if run is None:
            raise HTTPException(404, str(UnknownRunError(run_id)))
        return run

    @router.post(
        "",
        status_code=201,
        response_model=RunOut,
        summary="Start a run",
        responses={
            200: {"description": "A run holds this key already: that run.", "model": RunOut},
            404: {"description": "Unknown task."},
            422: {"description": "Bad inputs."},
        },
    )
    async def create_run(request: RunRequest, response: Response) -> dict[str, Any]:
        """Validate the inputs against the task's schema, store the run and queue it."""
        try:
            created = await runner.submit(
                request.task,
                request.inputs,
                key=request.key,
                key_ttl=request.key_ttl,
                request_id=request_id.get(),
            )
        except UnknownTaskError as exc:
            raise HTTPException(404, str(exc)) from exc
        except RunInputError as exc:
            loc = ["body", "inputs", *filter(None, exc.field.split("."))]
            detail = [{"loc": loc, "msg": exc.message, "type": "run_input"}]
            raise HTTPException(422, detail) from exc
        # Ties the run to the request that started it (the app's id, passed on by its run
        # client), so one grep follows a request from the app's log into the run.
        run = created.run
        log.info("run %s of task %s queued (request id %s)", run.id, run.task, request_id.get())
        if not created.created:
            response.status_code = 200
        return as_json(created.run)

    @router.get("", response_model=RunList, summary="List runs")
    async def list_runs(
        task: Annotated[str | None, Query(description="Only this task's runs.")] = None,
        status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> dict[str, Any]:
        """Runs, newest first."""
        runs = await store.list_runs(task or None, status, limit)
        return {"runs": [as_json(run) for run in runs]}

    @router.get("/{run_id}", response_model=RunOut, summary="Get a run", responses=_NOT_FOUND)
    async def get_run(run_id: str) -> dict[str, Any]:
        """The run with this id."""
        return as_json(await existing(run_id))

    @router.get(
        "/{run_id}/wait", response_model=RunOut, summary="Wait for a run", responses=_NOT_FOUND
    )
    async def wait_run(
        run_id: str,
        timeout: Annotated[
            float, Query(ge=0, description=f"Seconds to wait, at most {MAX_WAIT:g}.")
        ] = 30.0,
    ) -> dict[str, Any]:
        """The run once it is finished, or as it is after `timeout` seconds (200 either way)."""
        await existing(run_id)
        return as_json(await runner.wait(run_id, min(timeout, MAX_WAIT)))

    @router.get(
        "/{run_id}/events",
        summary="Follow a run",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {"example": 'data: {"id": ...}\n\n'}}},
            **_NOT_FOUND,
        },
    )
    async def run_events(run_id: str) -> StreamingResponse:
        """Server-Sent Events: `data: <run JSON>` now and on each change, closed when final."""
        await existing(run_id)
        return StreamingResponse(
            _events(runner, run_id, base_url),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/{run_id}/logs",
        summary="A run's log",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/plain": {}}}, **_NOT_FOUND},
    )
    async def run_logs(
        run_id: str,
        offset: Annotated[int, Query(ge=0, description="First byte to send.")] = 0,
        limit: Annotated[int | None, Query(ge=0, description="At most this many bytes.")] = None,
    ) -> StreamingResponse:
        """What the run printed to stdout and stderr (empty until it starts), from byte
        `offset`, at most `limit` bytes; `X-Log-Size` is the log's whole size, so a client
        pages with `offset` += what it got."""
        run = await existing(run_id)
        size, chunks = _log_range(run.log_path, offset, limit)
        return StreamingResponse(
            chunks, media_type="text/plain; charset=utf-8", headers={"X-Log-Size": str(size)}
        )

    @router.post(
        "/{run_id}/cancel", response_model=RunOut, summary="Cancel a run", responses=_NOT_FOUND
    )
    async def cancel_run(run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; a finished run is returned unchanged."""
        await existing(run_id)
        return as_json(await runner.cancel(run_id))

    return router


async def _events(runner: Runner, run_id: str, base_url: str) -> AsyncIterator[str]:
    async with contextlib.aclosing(runner.subscribe(run_id)) as changes:
        async for run in changes:
            yield f"data: {json.dumps(run_json(run, base_url))}\n\n"


def _log_range(path: str | None, offset: int, limit: int | None) -> tuple[int, Iterator[bytes]]:
    """The log's size, and its bytes from `offset` (at most `limit`) in chunks, read as
    they are sent (a sync iterator: Starlette reads it in a worker thread)."""
    try:
        size = os.stat(path or "").st_size
    except OSError:
        return 0, iter(())
    end = size if limit is None else min(size, offset + limit)

    def chunks() -> Iterator[bytes]:
        with open(path or "", "rb") as log:
            log.seek(offset)
            left = end - offset
            while left > 0 and (chunk := log.read(min(LOG_CHUNK, left))):
                left -= len(chunk)
                yield chunk

    return size, chunks()
