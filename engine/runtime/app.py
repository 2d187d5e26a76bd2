"""The API generated modules call: make an app, then declare its routes.

    app = create_app(project="shop", name="api")
    add_handler_route(app, method="GET", path="/", handler=add_one, query={"x": {...}})

Everything read from the environment (secrets, endpoints, the run API's address) is read
when a route is declared, i.e. when the generated module is imported: a missing variable
stops the app at start with a ConfigError naming it, never a 500 per request.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from engine.runtime import ConfigError, endpoint
from engine.runtime.access import RequestLog
from engine.runtime.actions import Respond, Run, compile_action, context
from engine.runtime.auth import ApiKey, Auth, Bearer, resolve
from engine.runtime.handlers import Handler
from engine.runtime.hosts import HostGuard, is_json
from engine.runtime.hosts import allowed_hosts as allowed_hosts_for
from engine.runtime.inputs import InvalidRequest, Parsed, RequestSchema, openapi_extra
from engine.runtime.ratelimit import Limiter, RateLimit, RateLimitMiddleware, too_many
from engine.runtime.shared import Shared, shared
from engine.runtime.static import PrivateAwareStaticFiles
from engine.runtime.webhooks import Webhook
from engine.runtime.websockets import SocketEndpoint

__all__ = [
    "ApiKey",
    "Bearer",
    "RateLimit",
    "Respond",
    "Run",
    "add_handler_route",
    "add_proxy_route",
    "add_respond_route",
    "add_run_route",
    "add_static",
    "add_webhook",
    "add_websocket",
    "create_app",
]

_NOT_JSON = "the body must be JSON, sent with Content-Type: application/json"

Query = Mapping[str, dict[str, Any]] | None
Answer = Callable[[Request, Parsed], Awaitable[Response]]


def create_app(
    *,
    project: str,
    name: str,
    description: str = "",
    health: str = "/health",
    metrics: bool = True,
    allowed_hosts: tuple[str, ...] | None = None,
    rate_limit: RateLimit | None = None,
) -> FastAPI:
    """A FastAPI app with a health route, OpenAPI docs at /docs, `GET /metrics` (unless
    `metrics` is False), request ids and access lines, and one pooled HTTP client.

    It answers only requests for `allowed_hosts` (default: engine.runtime.hosts) that no
    other site's page sent. `rate_limit` limits every request and WebSocket handshake but
    the health check.
    """
    state = Shared.from_env(project, name)
    state.metrics = metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _static_last(app)
        # Everything imported and built so far lives as long as the app: take it out of
        # the cyclic collector's scans, which otherwise revisit it on every collection.
        gc.freeze()
        if not state.needs_http:
            yield
            return
        import httpx  # only apps that proxy or start runs pay for it

        async with httpx.AsyncClient(follow_redirects=False) as http:
            state.http = http
            try:
                yield
            finally:
                state.http = None

    app = FastAPI(title=f"{project}: {name}", description=description, lifespan=lifespan)
    app.state.engine = state
    hosts = allowed_hosts_for(allowed_hosts)
    if "*" not in hosts:
        app.add_middleware(HostGuard, hosts=hosts)

    async def healthy() -> dict[str, str]:
        return {"status": "healthy"}

    app.add_api_route(health, healthy, methods=["GET"], summary="Health check")
    if rate_limit is not None:
        app.add_middleware(
            RateLimitMiddleware,
            limiter=Limiter(rate_limit, f"app {name}"),
            exempt=frozenset({health}),
        )
    recorder = None
    if metrics:
        from engine.runtime.metrics import METRICS_PATH, RequestMetrics, metrics_endpoint

        recorder = RequestMetrics(name)
        app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestLog, metrics=recorder)
    return app


def add_handler_route(
    app: FastAPI,
    *,
    method: str,
    path: str,
    handler: Callable[..., Any],
    query: Query = None,
    body: dict[str, Any] | None = None,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
) -> None:
    """A route that calls the user's `handler` with the request's values."""
    function = Handler(handler)
    _add(
        app,
        method,
        path,
        function.respond,
        query,
        body,
        auth,
        summary=handler.__name__,
        description=handler.__doc__,
        rate_limit=rate_limit,
    )


def add_respond_route(
    app: FastAPI,
    *,
    method: str,
    path: str,
    respond: Respond,
    query: Query = None,
    body: dict[str, Any] | None = None,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
) -> None:
    """A route answering a fixed response, whose strings may hold expressions."""
    answer = _action_answer(app, respond)
    _add(app, method, path, answer, query, body, auth, summary="Respond", rate_limit=rate_limit)


def add_run_route(
    app: FastAPI,
    *,
    method: str,
    path: str,
    run: Run,
    query: Query = None,
    body: dict[str, Any] | None = None,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
) -> None:
    """A route that starts a run of a task (and waits for it if `run.wait` says so)."""
    answer = _action_answer(app, run)
    shared(app).need_runs()
    summary = f"Run {run.task}"
    _add(app, method, path, answer, query, body, auth, summary=summary, rate_limit=rate_limit)


def add_proxy_route(
    app: FastAPI,
    *,
    method: str,
    path: str,
    target: str,
    target_path: str | None = None,
    query: Query = None,
    body: dict[str, Any] | None = None,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
    forward_auth: bool = False,
) -> None:
    """A route forwarding the request to app `target` (at `target_path`, default the same path).

    The caller's own credentials (`Authorization`, and the API key header of this route's
    auth) reach `target` only with `forward_auth`; the credentials this app was minted for
    `target` (its `auth.apps`) are sent instead.
    """
    from engine.runtime.credentials import credential_headers
    from engine.runtime.proxy import Proxy

    shared(app).needs_http = True
    credentials = credential_headers(target)
    own = {"authorization", *(h.lower() for h in credentials)}
    if isinstance(auth, ApiKey):
        own.add(auth.header.lower())
    proxy = Proxy(
        target,
        endpoint(target),
        target_path,
        drop=frozenset() if forward_auth else frozenset(own),
        credentials=credentials,
    )

    async def answer(request: Request, parsed: Parsed) -> Response:
        return await proxy.forward(request, shared(app).client())

    summary = f"Proxy to {target}"
    _add(app, method, path, answer, query, body, auth, summary=summary, rate_limit=rate_limit)


def add_webhook(
    app: FastAPI,
    *,
    path: str,
    provider: str,
    secret_envs: tuple[str, ...] = (),
    events: Mapping[str, Respond | Run] | None = None,
    action: Respond | Run | None = None,
    max_body: int = 26214400,
    dedupe: float | None = 259200.0,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
) -> None:
    """A webhook receiver (`github`, `standard` or `plain`); see engine.runtime.webhooks."""
    hook = Webhook(
        shared(app),
        path=path,
        provider=provider,
        secret_envs=tuple(secret_envs),
        events=events,
        action=action,
        max_body=max_body,
        dedupe=dedupe,
        auth=auth,
        limiter=Limiter(rate_limit, f"POST {path}") if rate_limit else None,
    )
    # A plain Starlette route, which serves an object that is not a function as the ASGI app
    # it is (add_route's hint names only request -> response functions).
    app.router.add_route(path, hook, methods=["POST"], include_in_schema=False)  # type: ignore[arg-type]


def add_websocket(
    app: FastAPI,
    *,
    path: str,
    pattern: str | None = None,
    handler: Callable[[WebSocket], Awaitable[Any]] | None = None,
    source: Callable[..., Any] | None = None,
    interval: float = 1.0,
    auth: Auth = None,
    heartbeat: float | None = None,
    max_message: int | None = None,
    max_connections: int | None = None,
    allow: tuple[str, ...] | None = None,
    rate_limit: RateLimit | None = None,
) -> None:
    """A WebSocket endpoint with a built-in `pattern` or the user's `handler`.

    `allow` limits the tasks a task-runner starts; `rate_limit` counts the messages clients
    send to a pattern (the connections, for a `handler`)."""
    socket = SocketEndpoint(
        shared(app),
        pattern=pattern,
        handler=handler,
        source=source,
        interval=interval,
        auth=auth,
        heartbeat=heartbeat,
        max_message=max_message,
        max_connections=max_connections,
        allow=allow,
        limiter=Limiter(rate_limit, f"WS {path}") if rate_limit else None,
        path=path,
    )
    app.add_api_websocket_route(path, socket)


def add_static(app: FastAPI, *, path: str, directory: str, private: tuple[str, ...] = ()) -> None:
    """Serve `directory` (relative to the working directory) at `path`, index.html included.

    The working directory is the project's folder. `.engine/`, hidden files and the files
    in `private` (relative to the project: the spec, secret sources) are never served.
    Static folders are matched after every route, whatever the order of declaration.
    """
    folder = Path(directory).resolve()
    if not folder.is_dir():
        raise ConfigError(f"static folder {directory!r} does not exist ({folder})")
    files = PrivateAwareStaticFiles(directory=folder, private=private, root=Path.cwd())
    app.mount(path, files, name=f"static:{path}")


def _add(
    app: FastAPI,
    method: str,
    path: str,
    answer: Answer,
    query: Query,
    body: dict[str, Any] | None,
    auth: Auth,
    *,
    summary: str,
    description: str | None = None,
    rate_limit: RateLimit | None = None,
) -> None:
    state = shared(app)
    guard = resolve(auth, state.project, state.name)
    schema = RequestSchema(dict(query) if query is not None else None, body)
    limiter = Limiter(rate_limit, f"{method} {path}") if rate_limit else None

    async def route(request: Request) -> Response:
        # The limit comes first: a caller guessing credentials is limited as well.
        wait = await limiter.hit(request) if limiter else None
        if wait is not None and limiter:
            return too_many(limiter, wait)
        denied = guard.check(request.headers)
        if denied:
            return JSONResponse(
                {"detail": denied.detail}, denied.status, headers=dict(denied.headers)
            )
        if not is_json(request.headers.get("content-type")) and await request.body():
            return JSONResponse({"detail": _NOT_JSON}, 415)
        try:
            parsed = await schema.parse(request)
        except InvalidRequest as exc:
            return JSONResponse({"detail": exc.errors}, 422)
        return await answer(request, parsed)

    app.add_api_route(
        path,
        route,
        methods=[method.upper()],
        summary=summary,
        description=description or "",
        openapi_extra=openapi_extra(path, schema) or None,
    )


def _action_answer(app: FastAPI, action: Respond | Run) -> Answer:
    act = compile_action(action)
    state = shared(app)

    async def answer(request: Request, parsed: Parsed) -> Response:
        ctx = context(
            path=parsed.path,
            query=parsed.query,
            body=parsed.body,
            headers=parsed.headers,
            endpoints=state.endpoints,
        )
        return await act(ctx, state.runs())

    return answer


def _static_last(app: FastAPI) -> None:
    """Move static mounts behind every route, so that `/` does not shadow the API."""
    routes = app.router.routes
    routes.sort(key=lambda r: isinstance(r, Mount) and isinstance(r.app, StaticFiles))
