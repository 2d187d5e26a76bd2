"""The declarative actions shared by routes and webhooks: `Respond` and `Run`.

Each is compiled once (its expressions too) into a callable that turns an expression
context into a response.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from engine.runtime.expressions import ExpressionError, compile_value, has_expression
from engine.runtime.runclient import FINAL_STATES, RunAPIError, RunAPIUnreachable, RunClient

__all__ = ["Action", "Respond", "Run", "compile_action", "context"]

log = logging.getLogger("engine.runtime")
_WAIT_STEP = 60.0  # seconds per wait call when a route waits without a limit

Action = Callable[[Mapping[str, Any], "RunClient | None"], Awaitable[Response]]


@dataclass(frozen=True)
class Respond:
    """A fixed response; strings in `json` and header values may hold expressions."""

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Run:
    """Start a run of `task`; `wait` is False, True or seconds; `allow` limits a dynamic task."""

    task: str
    inputs: Any = None
    wait: bool | float = False
    allow: tuple[str, ...] | None = None


def context(
    *,
    path: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    event: str | None = None,
    delivery: str | None = None,
    endpoints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The names an expression sees."""
    return {
        "path": dict(path or {}),
        "query": dict(query or {}),
        "body": body,
        "headers": dict(headers or {}),
        "event": event,
        "delivery": delivery,
        "endpoints": dict(endpoints or {}),
    }


def compile_action(action: Respond | Run) -> Action:
    """Compile `action` into `async (context, run_client) -> Response`."""
    if isinstance(action, Respond):
        return _RespondAction(action)
    if isinstance(action, Run):
        return _RunAction(action)
    raise TypeError(f"not an action: {action!r}")


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status)


_NOT_IN_HEADERS = re.compile(r"[^\t\x20-\x7e\x80-\xff]")  # RFC 9110 field-value, Latin-1


def header_value(text: str) -> str:
    """`text` as a header value: CR, LF, other controls and non-Latin-1 percent-encoded.

    A value computed from a request (`${{ query.name }}`) must not end the header early
    (response splitting) or fail to encode (a 500).
    """
    return _NOT_IN_HEADERS.sub(lambda m: quote(m.group(), safe=""), text).strip()


class _RespondAction:
    def __init__(self, respond: Respond) -> None:
        self.status = respond.status
        self.json = compile_value(respond.json)
        self.headers = compile_value(dict(respond.headers or {}))

    async def __call__(self, ctx: Mapping[str, Any], runs: RunClient | None) -> Response:
        try:
            content = self.json(ctx)
            headers = {key: header_value(str(v)) for key, v in self.headers(ctx).items()}
        except ExpressionError as exc:
            log.error("respond failed: %s", exc)
            return _error(500, f"Expression failed: {exc}")
        if content is None:
            return Response(status_code=self.status, headers=headers)
        return JSONResponse(content, self.status, headers=headers)


class _RunAction:
    def __init__(self, run: Run) -> None:
        if has_expression(run.task) and run.allow is None:
            raise ValueError(f"run.task {run.task!r} is an expression: it needs run.allow")
        self.task = compile_value(run.task)
        self.inputs = None if run.inputs is None else compile_value(run.inputs)
        self.wait = run.wait
        self.allow = None if run.allow is None else frozenset(run.allow)

    async def __call__(self, ctx: Mapping[str, Any], runs: RunClient | None) -> Response:
        if runs is None:
            return _error(503, "run API not configured")
        try:
            task = self.task(ctx)
            inputs = ctx["body"] if self.inputs is None else self.inputs(ctx)
        except ExpressionError as exc:
            log.error("run failed: %s", exc)
            return _error(500, f"Expression failed: {exc}")
        if self.allow is not None and task not in self.allow:
            allowed = ", ".join(sorted(self.allow))
            return _error(403, f"task {task!r} is not allowed here; allowed: {allowed}")
        try:
            run = await runs.start(str(task), {} if inputs is None else inputs)
            if self.wait is False:
                return JSONResponse(_summary(run, status="started"), 202)
            run = await self._wait(runs, run)
        except RunAPIUnreachable:
            return _error(503, "run API unreachable")
        except RunAPIError as exc:
            return _api_error(exc, task)
        return _finished(run)

    async def _wait(self, runs: RunClient, run: dict[str, Any]) -> dict[str, Any]:
        if self.wait is not True:
            return run if run["status"] in FINAL_STATES else await runs.wait(run["id"], self.wait)
        while run["status"] not in FINAL_STATES:
            run = await runs.wait(run["id"], _WAIT_STEP)
        return run


def _summary(run: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": run["id"], "url": run.get("url"), "status": run["status"], **extra}


def _finished(run: Mapping[str, Any]) -> JSONResponse:
    if run["status"] == "succeeded":
        return JSONResponse(_summary(run, outputs=run.get("outputs")))
    if run["status"] in FINAL_STATES:
        return JSONResponse(_summary(run, error=run.get("error")))
    return JSONResponse(_summary(run), 202)


def _api_error(exc: RunAPIError, task: Any) -> JSONResponse:
    if exc.status == 404:
        return _error(404, f"unknown task {task!r}")
    if exc.status == 422:
        return JSONResponse(exc.body, 422)
    log.error("run API answered %s: %s", exc.status, exc.body)
    return _error(502, f"run API answered {exc.status}")
