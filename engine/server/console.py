"""The console: the browser pages a person opens to see a project's apps and runs.

    GET /                       the project page: apps, and the latest runs (`?task=&status=`)
    GET /runs/{id}              a run's page; live while the run is not final
    GET /runs/{id}.json         the run as the run API's JSON, plus the tail of its log
    GET /console/static/{name}  the console's CSS and JS

Pages are server-rendered with Jinja2, autoescaped (run inputs, outputs, errors and logs are
untrusted), and work without JavaScript; a small script only keeps a running run's page
current by polling its `.json`. A Content-Security-Policy allows no inline script, so even
a bug in escaping would not run injected code.

Every page but the static files asks for the console's credential: a cookie set by the
one-time link that `engine apply` and `engine status` print, or the project's token as a
bearer token (engine.server.console_auth). Other local users reach 127.0.0.1 too, and runs'
inputs, outputs and logs are theirs to keep from them. Requests whose `Host` is not a
loopback name are refused, so a web page using DNS rebinding cannot read the console.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.runs.api import run_json
from engine.runs.store import Run, RunStatus, RunStore
from engine.server.console_auth import ConsoleLogin

LOG_TAIL = 200 * 1024
"""The most of a run's log the console shows or sends at once, in bytes (the end of it)."""

RUN_LIMIT = 50
"""How many runs the project page lists."""

_SIGN_IN = (
    "The console shows your project's runs to you only. Run `engine status` in the "
    "project's folder and open the console link it prints (it works once)."
)

APP_STATES = ("starting", "running", "backoff", "stopped", "failed")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
_STATUSES = tuple(s.value for s in RunStatus)

_HERE = Path(__file__).parent / "templates"
_STATIC_TYPES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def make_console_router(
    *, project: Callable[[], str], apps: Callable[[], list[dict]], store: RunStore, token: str
) -> APIRouter:
    """The console's routes for one project.

    `project()` gives the project's name (read per page: the first apply may set it).
    `apps()` is called on the event loop on each project page view (so it must be quick
    and must not block) and returns one dict per app with `name`, `state`, `url`, `port`,
    `pid`, `restarts` and, optionally, `description`. `token` is the project's API token,
    from which the console's sign-in is derived; no page shows it.
    """
    login = ConsoleLogin(token)
    router = APIRouter(dependencies=[Depends(_loopback_only)], include_in_schema=False)
    router.include_router(login.router())
    static = {name: (_HERE / "static" / name).read_bytes() for name in _STATIC_TYPES}
    versions = {name: hashlib.sha256(data).hexdigest()[:12] for name, data in static.items()}
    env = _environment()

    def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        def static_url(name: str) -> str:
            path = request.url_for("console_static", name=name).path
            return f"{path}?v={versions[name]}"

        html = env.get_template(template).render(
            project=project(),
            home=request.url_for("console_home").path,
            static_url=static_url,
            **context,
        )
        return HTMLResponse(html, code, headers=_HEADERS)

    def signed_out(request: Request) -> Response | None:
        """The answer to a request without the console's credential, or None."""
        if login.signed_in(request):
            return None
        if request.url.path.endswith(".json"):
            return JSONResponse({"detail": _SIGN_IN}, 401, headers=_HEADERS)
        return page(request, "message.html", 401, title="Sign in to the console", message=_SIGN_IN)

    async def runs_and_tasks(task: str, status: str) -> tuple[list[Run], list[str]]:
        runs = await store.list_runs(task or None, RunStatus(status) if status else None, RUN_LIMIT)
        tasks = {run.task for run in await store.list_runs(limit=500)} | ({task} - {""})
        return runs, sorted(tasks)

    # The routes are async: `apps()` and the store are the event loop's; only reading a
    # log file goes to a worker thread.
    @router.get("/", name="console_home", response_class=HTMLResponse)
    async def home(request: Request, task: str = "", status: str = "") -> Response:
        if denied := signed_out(request):
            return denied
        if status and status not in _STATUSES:
            known = ", ".join(_STATUSES)
            message = f"There is no run status “{status}”. The statuses are: {known}."
            return page(request, "message.html", 400, title="Unknown status", message=message)
        app_rows = [_app_row(app) for app in apps()]
        runs, tasks = await runs_and_tasks(task, status)
        return page(
            request,
            "project.html",
            apps=app_rows,
            runs=[_run_row(request, run) for run in runs],
            tasks=tasks,
            statuses=_STATUSES,
            task=task,
            status=status,
            limit=RUN_LIMIT,
        )

    @router.get("/runs/{run_id}.json", name="console_run_json")
    async def run_data(
        request: Request, run_id: str, log_from: Annotated[int, Query(ge=0)] = 0
    ) -> Response:
        if denied := signed_out(request):
            return denied
        run = await store.get(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}")
        body = run_json(run, str(request.base_url))
        body["finished"] = run.finished
        body["max_attempts"] = run.max_attempts
        body["duration"] = _duration(run)
        body["log"] = await run_in_threadpool(read_log_tail, run.log_path, log_from)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/runs/{run_id}", name="console_run", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> Response:
        if denied := signed_out(request):
            return denied
        run = await store.get(run_id)
        if run is None:
            message = f"There is no run “{run_id}” in {project()}. It may have been mistyped."
            return page(request, "message.html", 404, title="Run not found", message=message)
        log = await run_in_threadpool(read_log_tail, run.log_path)
        return page(
            request,
            "run.html",
            run=_run_row(request, run),
            inputs=_pretty(run.inputs),
            outputs=None if run.outputs is None else _pretty(run.outputs),
            log=log,
            json_url=request.url_for("console_run_json", run_id=run.id).path,
            task_url=_filter_url(request, task=run.task),
        )

    @router.get("/console/static/{name}", name="console_static")
    def static_file(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "no such file")
        # The URL carries the content's hash, so the file may be cached for good.
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        return Response(static[name], media_type=_STATIC_TYPES[name], headers=headers)

    return router


def read_log_tail(path: str | None, start: int = 0) -> dict[str, Any]:
    """The log from byte `start` to its end, at most its last `LOG_TAIL` bytes.

    Returns `{"start", "end", "text", "cut"}`: the byte range read, and whether bytes after
    the asked `start` were skipped to keep within `LOG_TAIL` (then `start` is at a line
    start when one is near). `end` stops before an incomplete UTF-8 character still being
    written, so the next read begins with it.
    """
    try:
        with open(path or "", "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if start > size:  # the file was replaced: read it again from the top
                start = 0
            cut = size - start > LOG_TAIL
            if cut:
                start = size - LOG_TAIL
                f.seek(start)
                head = f.read(4096)
                newline = head.find(b"\n")
                start += newline + 1 if newline != -1 else 0
            f.seek(start)
            data = f.read(size - start)
    except (FileNotFoundError, IsADirectoryError):
        return {"start": 0, "end": 0, "text": "", "cut": False}
    data = data[: len(data) - _incomplete_tail(data)]
    text = data.decode(errors="replace")
    return {"start": start, "end": start + len(data), "text": text, "cut": cut}


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of `data` are the start of an unfinished UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the character's first byte
            need = 2 if byte >= 0xC0 else 1
            need = 3 if byte >= 0xE0 else need
            need = 4 if byte >= 0xF0 else need
            return back if need > back else 0
    return 0


def _loopback_only(request: Request) -> None:
    host = request.headers.get("host", "").lower()
    if not host.endswith("]"):  # strip the port, but not from a bare "[::1]"
        host = host.rsplit(":", 1)[0]
    if host not in LOOPBACK_HOSTS:
        raise HTTPException(403, "the console answers on 127.0.0.1 and localhost only")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE),
        autoescape=True,  # run inputs, outputs, errors and logs are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _app_row(app: dict[str, Any]) -> dict[str, Any]:
    url = app.get("url") or ""
    # Only web addresses become links: a `javascript:` URL must never be clickable.
    link = url.rstrip("/") if url.startswith(("http://", "https://")) else None
    state = app.get("state") or "stopped"
    return {
        "name": app.get("name", ""),
        "description": app.get("description") or "",
        "state": state,
        "state_class": state if state in APP_STATES else "unknown",
        "url": url,
        "link": link,
        "docs": f"{link}/docs" if link else None,
        "port": app.get("port"),
        "pid": app.get("pid"),
        "restarts": app.get("restarts") or 0,
    }


def _run_row(request: Request, run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "status": run.status.value,
        "finished": run.finished,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": _duration(run),
        "url": request.url_for("console_run", run_id=run.id).path,
        "task_url": _filter_url(request, task=run.task),
    }


def _filter_url(request: Request, **params: str) -> str:
    url = request.url_for("console_home").include_query_params(**params)
    return f"{url.path}?{url.query}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(run: Run) -> str:
    """How long the run took, or has been running for; "" before it starts."""
    if run.started_at is None:
        return ""
    end = run.finished_at if run.finished_at is not None else time.time()
    return format_duration(max(0.0, end - run.started_at))


def format_duration(seconds: float) -> str:
    """A short human duration: `420 ms`, `4.20 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
