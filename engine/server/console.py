"""The console: the browser pages a person opens to see a project's apps and runs, and act.

    GET  /                       the project page: apps, tasks, the latest runs (`?task=&status=`)
    GET  /project.json           its lists again, for the page to stay current
    GET  /apps/{name}            an app: state, URL, restarts, its last failure, its routes, its log
    GET  /apps/{name}.json       its facts and log again
    GET  /tasks/{name}           a task: a form built from its inputs' schema, its recent runs
    GET  /tasks/{name}.json      its runs again
    POST /tasks/{name}           start a run from the form; 303 to the run's page
    GET  /runs/{id}              a run's page; live while the run is not final
    GET  /runs/{id}.json         the run as the run API's JSON, plus the tail of its log
    POST /runs/{id}/cancel       cancel a queued or running run; 303 back to its page
    GET  /console/static/{name}  the console's CSS and JS

Pages are server-rendered with Jinja2, autoescaped (run inputs, outputs, errors and logs are
untrusted), and work without JavaScript; small scripts only keep pages current by polling
their `.json`. A Content-Security-Policy allows no inline script, so even a bug in escaping
would not run injected code.

Every page but the static files asks for the console's credential: a cookie set by the
one-time link that `engine apply` and `engine status` print, or the project's token as a
bearer token (engine.server.console_auth). Other local users reach 127.0.0.1 too, and runs'
inputs, outputs and logs are theirs to keep from them. Requests whose `Host` is not a
loopback name are refused, so a web page using DNS rebinding cannot read the console. The
two forms that change something also need their page's form token and the console's own
`Origin` (engine.server.console_post), so another site cannot start or cancel runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.backends.base import TaskUnit
from engine.errors import EngineError, RunInputError
from engine.runs.api import run_json
from engine.runs.errors import UnknownRunError, UnknownTaskError
from engine.runs.runner import Runner
from engine.runs.store import Run, RunStatus, RunStore
from engine.runtime.access import request_id
from engine.server.console_auth import ConsoleLogin
from engine.server.console_endpoints import endpoints
from engine.server.console_forms import form_fields, read_inputs
from engine.server.console_post import Refused, read_form
from engine.spec.model import Spec

log = logging.getLogger("engine.server")

LOG_TAIL = 200 * 1024
"""The most of a run's log the console shows or sends at once, in bytes (the end of it)."""

APP_LOG_TAIL = 32 * 1024
"""The most of an app's log its page shows, in bytes (the end of it)."""

RUN_LIMIT = 50
"""How many runs the project page lists."""

TASK_RUNS = 20
"""How many runs a task's page lists."""

_SIGN_IN = (
    "The console shows your project's runs to you only. Run `engine status` in the "
    "project's folder and open the console link it prints (it works once)."
)

APP_STATES = ("starting", "running", "unhealthy", "backoff", "stopped", "failed")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
_STATUSES = tuple(s.value for s in RunStatus)

_HERE = Path(__file__).parent / "templates"
_STATIC_TYPES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
}
_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    # `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null` on
    # the console's own form posts, which could then not be told from a sandboxed page's.
    "Referrer-Policy": "same-origin",
}

AppLog = Callable[[str], Awaitable[str]]


async def _no_log(name: str) -> str:
    return ""


def make_console_router(
    *,
    project: Callable[[], str],
    apps: Callable[[], Awaitable[list[dict]]],
    store: RunStore,
    token: str,
    runner: Runner | None = None,
    spec: Callable[[], Spec | None] = lambda: None,
    app_log: AppLog = _no_log,
) -> APIRouter:
    """The console's routes for one project.

    `project()` gives the project's name (read per page: the first apply may set it).
    `apps()` is awaited on each page view (so it must be quick) and returns one dict per
    app with `name`, `state`, `url`, `port`, `pid`, `restarts` and, optionally, `detail`
    (why it last failed) and `description`. `runner` starts and cancels runs and knows the
    tasks (without it the console has none);
    `spec()` is the applied spec, for descriptions and routes; `app_log(name)` the end of
    an app's log. `token` is the project's API token, from which the console's sign-in is
    derived; no page shows it.
    """
    login = ConsoleLogin(token)
    router = APIRouter(dependencies=[Depends(_loopback_only)], include_in_schema=False)
    router.include_router(login.router())
    static = {name: (_HERE / "static" / name).read_bytes() for name in _STATIC_TYPES}
    versions = {name: hashlib.sha256(data).hexdigest()[:12] for name, data in static.items()}
    env = _environment()
    pieces: Any = env.get_template("_rows.html").module  # its macros render live updates

    def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        def static_url(name: str) -> str:
            path = request.url_for("console_static", name=name).path
            return f"{path}?v={versions[name]}"

        context.setdefault("live_url", None)
        html = env.get_template(template).render(
            project=project(),
            home=request.url_for("console_home").path,
            static_url=static_url,
            **context,
        )
        return HTMLResponse(html, code, headers=_HEADERS)

    def message(request: Request, code: int, title: str, text: str) -> HTMLResponse:
        return page(request, "message.html", code, title=title, message=text)

    def signed_out(request: Request) -> Response | None:
        """The answer to a request without the console's credential, or None."""
        if login.signed_in(request):
            return None
        if request.url.path.endswith(".json"):
            return JSONResponse({"detail": _SIGN_IN}, 401, headers=_HEADERS)
        return message(request, 401, "Sign in to the console", _SIGN_IN)

    def tasks() -> Mapping[str, TaskUnit]:
        return runner.tasks if runner is not None else {}

    def description(kind: str, name: str) -> str:
        applied = spec()
        if applied is None:
            return ""
        found = (applied.apps if kind == "app" else applied.tasks).get(name)
        return found.description if found else ""

    async def app_rows(request: Request) -> list[dict[str, Any]]:
        rows = []
        for app in await apps():
            said = description("app", str(app.get("name"))) or app.get("description")
            rows.append(_app_row(request, {**app, "description": said}))
        return rows

    async def latest_runs(task: str, status: str) -> list[Run]:
        return await store.list_runs(task or None, RunStatus(status) if status else None, RUN_LIMIT)

    async def runs_and_tasks(task: str, status: str) -> tuple[list[Run], list[str]]:
        runs = await latest_runs(task, status)
        names = {run.task for run in await store.list_runs(limit=500)} | set(tasks())
        return runs, sorted(names | ({task} - {""}))

    def unknown_status(request: Request, status: str) -> Response | None:
        if not status or status in _STATUSES:
            return None
        known = ", ".join(_STATUSES)
        text = f"There is no run status “{status}”. The statuses are: {known}."
        return message(request, 400, "Unknown status", text)

    # The routes are async: `apps()`, the runner and the store are the event loop's; only
    # reading a log file goes to a worker thread.
    @router.get("/", name="console_home", response_class=HTMLResponse)
    async def home(request: Request, task: str = "", status: str = "") -> Response:
        if denied := signed_out(request) or unknown_status(request, status):
            return denied
        runs, names = await runs_and_tasks(task, status)
        task_list = [
            {"name": n, "description": description("task", n), "page": _task_url(request, n)}
            for n in sorted(tasks())
        ]
        live = request.url_for("console_project_json").include_query_params(
            task=task, status=status
        )
        return page(
            request,
            "project.html",
            apps=await app_rows(request),
            runs=[_run_row(request, run) for run in runs],
            tasks=names,
            task_list=task_list,
            statuses=_STATUSES,
            task=task,
            status=status,
            limit=RUN_LIMIT,
            live_url=f"{live.path}?{live.query}",
        )

    @router.get("/project.json", name="console_project_json")
    async def project_data(request: Request, task: str = "", status: str = "") -> Response:
        if denied := signed_out(request):
            return denied
        if status not in ("", *_STATUSES):
            raise HTTPException(400, f"no run status {status!r}")
        runs = await latest_runs(task, status)
        empty = "No runs match these filters." if task or status else "No runs yet."
        html = {
            "app-rows": pieces.app_rows(await app_rows(request)),
            "run-rows": pieces.run_rows([_run_row(request, r) for r in runs], empty),
        }
        return JSONResponse({"html": html}, headers={"Cache-Control": "no-store"})

    async def find_app(request: Request, name: str) -> dict[str, Any] | None:
        return next((row for row in await app_rows(request) if row["name"] == name), None)

    async def log_of(name: str) -> str:
        try:
            return await app_log(name)
        except (EngineError, OSError) as exc:  # a backend's log API may be away
            return f"(the log cannot be read now: {exc})"

    @router.get("/apps/{name}.json", name="console_app_json")
    async def app_data(request: Request, name: str) -> Response:
        if denied := signed_out(request):
            return denied
        app = await find_app(request, name)
        if app is None:
            raise HTTPException(404, f"no app {name!r}")
        body = {"html": {"facts": pieces.app_facts(app)}, "text": {"log": await log_of(name)}}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/apps/{name}", name="console_app", response_class=HTMLResponse)
    async def app_page(request: Request, name: str) -> Response:
        if denied := signed_out(request):
            return denied
        rows = await app_rows(request)
        app = next((row for row in rows if row["name"] == name), None)
        if app is None:
            text = f"There is no app “{name}” in {project()}. The project page lists its apps."
            return message(request, 404, "App not found", text)
        applied = spec()
        declared = applied.apps.get(name) if applied else None
        return page(
            request,
            "app.html",
            app=app,
            endpoints=endpoints(declared) if declared and declared.generated else [],
            command=bool(declared and not declared.generated),
            task_pages={n: _task_url(request, n) for n in tasks()},
            app_pages={a["name"]: a["page"] for a in rows},
            log=await log_of(name),
            live_url=_named_url(request, "console_app_json", name),
        )

    async def task_page(
        request: Request,
        unit: TaskUnit,
        code: int = 200,
        posted: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        problem: str = "",
    ) -> Response:
        runs = await store.list_runs(unit.name, None, TASK_RUNS)
        timeout = "none" if unit.timeout is None else format_duration(unit.timeout)
        return page(
            request,
            "task.html",
            code,
            task={
                "name": unit.name,
                "description": description("task", unit.name),
                "handler": unit.handler,
                "retries": unit.retries,
                "timeout": timeout,
                "concurrency": unit.concurrency,
                "page": _task_url(request, unit.name),
            },
            fields=form_fields(unit.input_schema, posted, errors),
            form_token=login.form_token(request),
            problem=problem,
            runs=[_run_row(request, run) for run in runs],
            all_runs=_filter_url(request, task=unit.name),
            live_url=_named_url(request, "console_task_json", unit.name),
        )

    def no_task(request: Request, name: str) -> Response:
        known = ", ".join(sorted(tasks())) or "none"
        text = f"There is no task “{name}” in {project()}. Its tasks are: {known}."
        return message(request, 404, "Task not found", text)

    @router.get("/tasks/{name}.json", name="console_task_json")
    async def task_data(request: Request, name: str) -> Response:
        if denied := signed_out(request):
            return denied
        runs = [_run_row(request, run) for run in await store.list_runs(name, None, TASK_RUNS)]
        html = {"run-rows": pieces.run_rows(runs, "No runs of this task yet.")}
        return JSONResponse({"html": html}, headers={"Cache-Control": "no-store"})

    @router.get("/tasks/{name}", name="console_task", response_class=HTMLResponse)
    async def task_view(request: Request, name: str) -> Response:
        if denied := signed_out(request):
            return denied
        unit = tasks().get(name)
        return no_task(request, name) if unit is None else await task_page(request, unit)

    @router.post("/tasks/{name}", name="console_start", response_class=HTMLResponse)
    async def start_run(request: Request, name: str) -> Response:
        if denied := signed_out(request):
            return denied
        try:
            form = await read_form(request, login)
        except Refused as exc:
            log.warning("console: refused a form to start task %s: %s", name, exc.message)
            return message(request, exc.status, "Nothing was started", exc.message)
        unit = tasks().get(name)
        if unit is None or runner is None:
            return no_task(request, name)
        inputs, errors = read_inputs(unit.input_schema, form)
        if errors:
            return await task_page(request, unit, 422, form, errors, "Fix the inputs below.")
        try:
            created = await runner.submit(name, inputs, request_id=request_id.get())
        except UnknownTaskError:  # removed by an apply meanwhile
            return no_task(request, name)
        except RunInputError as exc:
            field = exc.field.split(".", 1)[0]
            if field in unit.input_schema.get("properties", {}):
                return await task_page(request, unit, 422, form, {field: exc.message})
            return await task_page(request, unit, 422, form, problem=exc.message)
        log.info("console: run %s of task %s queued", created.run.id, name)
        return RedirectResponse(_run_url(request, created.run.id), status_code=303)

    @router.post("/runs/{run_id}/cancel", name="console_cancel", response_class=HTMLResponse)
    async def cancel_run(request: Request, run_id: str) -> Response:
        if denied := signed_out(request):
            return denied
        try:
            await read_form(request, login)
        except Refused as exc:
            log.warning("console: refused a form to cancel run %s: %s", run_id, exc.message)
            return message(request, exc.status, "Nothing was cancelled", exc.message)
        if runner is None:
            raise HTTPException(404, "this console runs no tasks")
        try:
            run = await runner.cancel(run_id)
        except UnknownRunError:
            text = f"There is no run “{run_id}” in {project()}. It may have been mistyped."
            return message(request, 404, "Run not found", text)
        log.info("console: run %s of task %s is %s", run.id, run.task, run.status)
        return RedirectResponse(_run_url(request, run.id), status_code=303)

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
            text = f"There is no run “{run_id}” in {project()}. It may have been mistyped."
            return message(request, 404, "Run not found", text)
        run_log = await run_in_threadpool(read_log_tail, run.log_path)
        return page(
            request,
            "run.html",
            run=_run_row(request, run),
            inputs=_pretty(run.inputs),
            outputs=None if run.outputs is None else _pretty(run.outputs),
            log=run_log,
            json_url=request.url_for("console_run_json", run_id=run.id).path,
            task_url=_task_url(request, run.task)
            if run.task in tasks()
            else _filter_url(request, task=run.task),
            cancel_url=request.url_for("console_cancel", run_id=run.id).path,
            form_token=login.form_token(request),
        )

    @router.get("/console/static/{name}", name="console_static")
    def static_file(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "no such file")
        # The URL carries the content's hash, so the file may be cached for good.
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        return Response(static[name], media_type=_STATIC_TYPES[name], headers=headers)

    return router


def read_log_tail(path: str | None, start: int = 0, limit: int = LOG_TAIL) -> dict[str, Any]:
    """The log from byte `start` to its end, at most its last `limit` bytes.

    Returns `{"start", "end", "text", "cut"}`: the byte range read, and whether bytes after
    the asked `start` were skipped to keep within `limit` (then `start` is at a line
    start when one is near). `end` stops before an incomplete UTF-8 character still being
    written, so the next read begins with it.
    """
    try:
        with open(path or "", "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if start > size:  # the file was replaced: read it again from the top
                start = 0
            cut = size - start > limit
            if cut:
                start = size - limit
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


def _app_row(request: Request, app: dict[str, Any]) -> dict[str, Any]:
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
        "detail": app.get("detail") or "",
        "page": _named_url(request, "console_app", str(app.get("name", ""))),
    }


def _run_row(request: Request, run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "status": run.status.value,
        "finished": run.finished,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "request_id": run.request_id,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": _duration(run),
        "url": _run_url(request, run.id),
        "task_url": _filter_url(request, task=run.task),
    }


def _run_url(request: Request, run_id: str) -> str:
    return request.url_for("console_run", run_id=run_id).path


def _task_url(request: Request, name: str) -> str:
    return _named_url(request, "console_task", name)


def _named_url(request: Request, route: str, name: str) -> str:
    """The path of an app's or a task's page; any name (a stray `/`, `?`) stays one segment."""
    return request.url_for(route, name=quote(name, safe="")).path


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
