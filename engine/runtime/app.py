"""The API generated modules call: make an app, then say what each of its routes does.

    app = rt.create_app(project="shop", name="api")
    api_token = rt.bearer(app, "API_TOKEN")          # a FastAPI security dependency
    add_one = rt.run(app, task="add-one")            # what a route does, built once

    @app.post("/runs", status_code=202, dependencies=[Depends(api_token)])
    async def start_add_one(request: Request, body: AddOneInputs) -> Response:
        return await add_one(request, body=body)

FastAPI validates path, query and body (its own 422s); the endpoint objects made here hold
the logic: calling a handler, answering a `respond`, starting a run, proxying. Everything
read from the environment (secrets, endpoints, the run API's address) is read when the
module is imported: a missing variable stops the app at start with a ConfigError naming
it, never a 500 per request.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from engine.runtime import ConfigError, endpoint, jsonbody
from engine.runtime.access import RequestLog
from engine.runtime.actions import Respond, Run, compile_action, context
from engine.runtime.auth import ApiKey, Auth, Bearer, resolve
from engine.runtime.handlers import Handler, Parsed
from engine.runtime.hosts import HostGuard, is_json
from engine.runtime.hosts import allowed_hosts as allowed_hosts_for
from engine.runtime.openapi import RunFinished, RunStarted, document, install, responses
from engine.runtime.openapi import webhook_operation as _webhook_operation
from engine.runtime.ratelimit import Limiter, RateLimit, RateLimitMiddleware, too_many
from engine.runtime.shared import Shared, shared
from engine.runtime.static import PrivateAwareStaticFiles
from engine.runtime.webhooks import Webhook
from engine.runtime.websockets import SocketEndpoint

__all__ = [
    "ApiKey",
    "Bearer",
    "Endpoint",
    "RateLimit",
    "Respond",
    "Run",
    "RunFinished",
    "RunStarted",
    "api_key",
    "bearer",
    "create_app",
    "handler",
    "proxy",
    "rate_limit",
    "respond",
    "responses",
    "run",
    "static_files",
    "webhook",
    "websocket",
]

_NOT_JSON = "the body must be JSON, sent with Content-Type: application/json"

Answer = Callable[[Request, Parsed], Awaitable[Response]]


class _Limited(Exception):
    """Raised by a route's rate limit dependency; answered 429 by the app."""

    def __init__(self, limiter: Limiter, wait: int) -> None:
        super().__init__(wait)
        self.limiter, self.wait = limiter, wait


class _JsonRoute(APIRoute):
    """An APIRoute that parses JSON bodies the way engine can carry them (engine.runtime.
    jsonbody: no NaN, no lone surrogates, bounded nesting), so such a body is a 422 rather
    than a 500 later; FastAPI then reads the parsed value instead of parsing again."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def parse_first(request: Request) -> Response:
            raw = await request.body()
            if raw and is_json(request.headers.get("content-type", "application/json")):
                try:
                    request._json = jsonbody.loads(raw)
                except jsonbody.BadJson as exc:
                    if exc.pos is None:  # JSON, but not what engine can carry
                        raise _not_carried(exc) from None
                    # A syntax error: FastAPI parses again and reports it its own way.
            return await handle(request)

        return parse_first


def _not_carried(exc: jsonbody.BadJson) -> RequestValidationError:
    error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}
    return RequestValidationError([{**error, "input": {}, "ctx": {"error": str(exc)}}])


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

    app = FastAPI(
        title=f"{project}: {name}",
        description=description,
        lifespan=lifespan,
        # Each endpoint's function name is unique in its module: a generated client's
        # method is named after it (post_orders, not post_orders_orders_post).
        generate_unique_id_function=_operation_id,
    )
    app.router.route_class = _JsonRoute
    app.state.engine = state
    install(app)
    app.add_exception_handler(_Limited, _too_many)
    hosts = allowed_hosts_for(allowed_hosts)
    if "*" not in hosts:
        app.add_middleware(HostGuard, hosts=hosts)

    async def healthy() -> dict[str, str]:
        return {"status": "healthy"}

    app.add_api_route(health, healthy, methods=["GET"], summary="Health check")
    if rate_limit is not None:
        app.add_middleware(
            RateLimitMiddleware,
            limiter=Limiter(rate_limit),
            exempt=frozenset({health}),
        )
    recorder = None
    if metrics:
        from engine.runtime.metrics import METRICS_PATH, RequestMetrics, metrics_endpoint

        recorder = RequestMetrics(name)
        app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestLog, metrics=recorder)
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


async def _too_many(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Limited)  # registered for _Limited only
    return too_many(exc.limiter, exc.wait)


class Endpoint:
    """What one route does, built once when the module is imported; each request calls it
    with the values FastAPI validated (a body model is passed on as the JSON sent, so
    expressions and run inputs see the client's values, not the model's defaults)."""

    def __init__(self, answer: Answer, keep: type | None = None) -> None:
        self.answer = answer
        self.keep = keep  # a model the answer takes as it is (a handler's own)

    async def __call__(
        self,
        request: Request,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        """The answer; without declared `query`, the request's query strings as they are."""
        if isinstance(body, bytes):  # FastAPI hands over what is not JSON as bytes
            return JSONResponse({"detail": _NOT_JSON}, 415)
        if isinstance(body, BaseModel) and type(body) is not self.keep:
            body = await request.json()  # as sent (FastAPI parsed it once, and keeps it)
        values = Parsed(
            dict(path or {}),
            dict(request.query_params if query is None else query),
            body,
            dict(request.headers),
        )
        return await self.answer(request, values)


def handler(function: Callable[..., Any]) -> Endpoint:
    """Call the user's `function` with the request's values (engine.runtime.handlers); a
    body of the model its `body` parameter is annotated with is passed on as it is."""
    made = Handler(function)
    return Endpoint(made.respond, made.models.get("body"))


def respond(
    app: FastAPI, status: int = 200, json: Any = None, headers: Mapping[str, str] | None = None
) -> Endpoint:
    """Answer a fixed response, whose strings may hold expressions."""
    return _action(app, Respond(status, json, headers))


def run(app: FastAPI, task: str, **options: Any) -> Endpoint:
    """Start a run of `task` (and wait for it if `wait` says so); see actions.Run."""
    endpoint = _action(app, Run(task, **options))
    shared(app).need_runs()
    return endpoint


def proxy(
    app: FastAPI, target: str, path: str | None = None, *, forward_auth: bool = False
) -> Endpoint:
    """Forward the request to app `target` (at `path`, default the same path).

    The caller's own credentials (`Authorization`, and every API key header this app
    checks) reach `target` only with `forward_auth`; the credentials this app was minted
    for `target` (its `auth.apps`) are sent instead.
    """
    from engine.runtime.credentials import credential_headers
    from engine.runtime.proxy import Proxy

    state = shared(app)
    state.needs_http = True
    credentials = credential_headers(target)
    url = endpoint(target)
    made: list[Proxy] = []

    async def answer(request: Request, parsed: Parsed) -> Response:
        if not made:  # at the first request: every API key header of the app is known
            own = {"authorization", *(h.lower() for h in credentials), *state.key_headers}
            drop = frozenset() if forward_auth else frozenset(own)
            made.append(Proxy(target, url, path, drop=drop, credentials=credentials))
        return await made[0].forward(request, state.client())

    return Endpoint(answer)


def bearer(
    app: FastAPI, secret_env: str, *, apps: tuple[str, ...] = (), tasks: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """A dependency requiring `Authorization: Bearer <the secret in secret_env>` (or the
    credential minted for one of `apps` or `tasks`); listed in OpenAPI as an HTTP bearer
    scheme."""
    return _guard(app, Bearer(secret_env, apps, tasks), HTTPBearer(auto_error=False))


def api_key(
    app: FastAPI,
    header: str,
    secret_env: str,
    *,
    apps: tuple[str, ...] = (),
    tasks: tuple[str, ...] = (),
) -> Callable[..., Any]:
    """A dependency requiring header `header` to hold the secret in `secret_env` (or the
    credential minted for one of `apps` or `tasks`); listed in OpenAPI as an API key scheme."""
    shared(app).key_headers.add(header.lower())
    scheme = APIKeyHeader(name=header, auto_error=False, scheme_name=f"{header} header")
    return _guard(app, ApiKey(header, secret_env, apps, tasks), scheme)


def _guard(app: FastAPI, auth: Bearer | ApiKey, scheme: Any) -> Callable[..., Any]:
    state = shared(app)
    guard = resolve(auth, state.project, state.name)

    # The scheme is a sub-dependency only so that OpenAPI lists it; the guard decides.
    credentials = Depends(scheme)

    async def check(request: Request, _: Any = credentials) -> None:
        denied = guard.check(request.headers)
        if denied:
            raise HTTPException(denied.status, denied.detail, headers=dict(denied.headers))

    return check


def rate_limit(
    app: FastAPI, requests: int, per: float, by: str = "client"
) -> Callable[[Request], Awaitable[None]]:
    """A dependency answering 429 (with Retry-After) over `requests` per `per` seconds;
    list it before the auth dependency, so that a caller guessing credentials is limited."""
    limiter = Limiter(RateLimit(requests, per, by))

    async def limit(request: Request) -> None:
        wait = await limiter.hit(request)
        if wait is not None:
            raise _Limited(limiter, wait)

    return limit


def webhook(
    app: FastAPI,
    path: str,
    provider: str = "github",
    *,
    secret_envs: tuple[str, ...] = (),
    events: Mapping[str, Respond | Run] | None = None,
    action: Respond | Run | None = None,
    max_body: int = 25_000_000,
    dedupe: float | None = 259200.0,
    auth: Auth = None,
    rate_limit: RateLimit | None = None,
) -> Webhook:
    """A webhook receiver (`github`, `standard` or `plain`; see engine.runtime.webhooks), to
    be added as a plain Starlette route, which serves it as the ASGI app it is (it needs the
    raw body, none of FastAPI's parameter parsing); its operation is listed in the OpenAPI
    document. It checks `auth` itself, before reading the body."""
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
        limiter=Limiter(rate_limit) if rate_limit else None,
    )
    codes = {400, 413} | ({415} if provider == "github" else set())
    codes |= {401} if provider != "plain" or auth else set()
    codes |= {403} if auth else set()
    codes |= {429} if rate_limit else set()
    names = [*(events or {})]
    summary = f"{provider.capitalize()} webhook"
    operation_id = "webhook" + "".join(c if c.isalnum() else "_" for c in path)
    document(app, path, "POST", _webhook_operation(provider, names, codes, summary, operation_id))
    return hook


def websocket(
    app: FastAPI,
    path: str,
    pattern: str | None = None,
    *,
    handler: Callable[[WebSocket], Awaitable[Any]] | None = None,
    source: Callable[..., Any] | None = None,
    interval: float = 1.0,
    auth: Auth = None,
    heartbeat: float | None = None,
    max_message: int | None = None,
    max_connections: int | None = None,
    allow: tuple[str, ...] | None = None,
    rate_limit: RateLimit | None = None,
) -> SocketEndpoint:
    """A WebSocket endpoint with a built-in `pattern` or the user's `handler`; `auth` is
    checked before the handshake.

    `allow` limits the tasks a task-runner starts; `rate_limit` counts the messages clients
    send to a pattern (the connections, for a `handler`)."""
    return SocketEndpoint(
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
        limiter=Limiter(rate_limit) if rate_limit else None,
        path=path,
    )


def static_files(directory: str, *, private: Iterable[str] = ()) -> StaticFiles:
    """The folder `directory` (relative to the working directory) as an app to mount,
    index.html included.

    The working directory is the project's folder. `.engine/`, hidden files and the files
    in `private` (relative to the project: the spec, secret sources) are never served.
    Static folders are matched after every route, whatever the order of declaration.
    """
    folder = Path(directory).resolve()
    if not folder.is_dir():
        raise ConfigError(f"static folder {directory!r} does not exist ({folder})")
    return PrivateAwareStaticFiles(directory=folder, private=tuple(private), root=Path.cwd())


def _action(app: FastAPI, action: Respond | Run) -> Endpoint:
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

    return Endpoint(answer)


def _static_last(app: FastAPI) -> None:
    """Move static mounts behind every route, so that `/` does not shadow the API."""
    routes = app.router.routes
    routes.sort(key=lambda r: isinstance(r, Mount) and isinstance(r.app, StaticFiles))
