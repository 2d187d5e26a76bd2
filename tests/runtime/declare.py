"""Routes declared in Python, for the runtime's tests: each `add_*` makes the endpoint the
generated modules make (engine.runtime.app) and a route calling it, without schemas (the
generated modules' own schemas are tested through the compiler, tests/runtime/test_handlers.py).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from engine.runtime.app import (
    Endpoint,
    RateLimit,
    Respond,
    Run,
    api_key,
    bearer,
    create_app,
    handler,
    proxy,
    rate_limit,
    respond,
    run,
    static_files,
    webhook,
    websocket,
)
from engine.runtime.auth import ApiKey, Auth, Bearer

__all__ = ["ApiKey", "Bearer", "RateLimit", "Respond", "Run", "create_app"]


_ANY_BODY = Body(None)


def _route(
    app: FastAPI,
    method: str,
    path: str,
    endpoint: Endpoint,
    auth: Auth = None,
    rate_limit_: RateLimit | None = None,
) -> None:
    dependencies = []
    if rate_limit_ is not None:
        limit = rate_limit(app, rate_limit_.requests, rate_limit_.per, rate_limit_.by)
        dependencies.append(Depends(limit))
    if isinstance(auth, Bearer):
        dependencies.append(Depends(bearer(app, auth.secret_env, apps=auth.apps)))
    elif isinstance(auth, ApiKey):
        dependencies.append(Depends(api_key(app, auth.header, auth.secret_env, apps=auth.apps)))

    if method.upper() == "GET":

        async def get(request: Request) -> Response:
            return await endpoint(request, path=request.path_params)

        route: Callable[..., Any] = get
    else:

        async def other(request: Request, body: Any = _ANY_BODY) -> Response:
            return await endpoint(request, path=request.path_params, body=body)

        route = other
    app.add_api_route(path, route, methods=[method.upper()], dependencies=dependencies)


def add_handler_route(
    app: FastAPI, *, method: str, path: str, handler: Callable[..., Any], **kw: Any
) -> None:
    _route(app, method, path, _handler(handler), kw.get("auth"), kw.get("rate_limit"))


def add_respond_route(app: FastAPI, *, method: str, path: str, respond: Respond, **kw: Any) -> None:
    made = _respond(app, respond.status, respond.json, respond.headers)
    _route(app, method, path, made, kw.get("auth"), kw.get("rate_limit"))


def add_run_route(app: FastAPI, *, method: str, path: str, run: Run, **kw: Any) -> None:
    options = {k: getattr(run, k) for k in ("inputs", "wait", "allow", "respond", "failed")}
    made = _run(app, run.task, **options)
    _route(app, method, path, made, kw.get("auth"), kw.get("rate_limit"))


def add_proxy_route(
    app: FastAPI,
    *,
    method: str,
    path: str,
    target: str,
    target_path: str | None = None,
    forward_auth: bool = False,
    **kw: Any,
) -> None:
    made = proxy(app, target, target_path, forward_auth=forward_auth)
    _route(app, method, path, made, kw.get("auth"), kw.get("rate_limit"))


def add_webhook(app: FastAPI, *, path: str, **kw: Any) -> None:
    app.add_route(path, webhook(app, path, **kw), methods=["POST"])


def add_websocket(app: FastAPI, *, path: str, **kw: Any) -> None:
    app.add_api_websocket_route(path, websocket(app, path, **kw))


def add_static(app: FastAPI, *, path: str, directory: str, private: tuple[str, ...] = ()) -> None:
    app.mount(path, static_files(directory, private=private), name="static")


_handler, _respond, _run = handler, respond, run


def compiled_app(folder: Path, app: dict[str, Any], files: dict[str, str]) -> FastAPI:
    """The app the compiler generates for `app` (one app's spec, as a dict) in a project in
    `folder` holding `files` (name -> source), imported in this process."""
    import yaml

    from engine.compiler import render_app
    from engine.load import load_spec

    for name, source in files.items():
        (folder / name).write_text(source, encoding="utf-8")
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"version": 1, "project": "shop", "apps": {"api": app}}))
    spec = load_spec(spec_file, environ={})
    module_file = folder / "_engine_app.py"
    module_file.write_text(render_app(spec, spec.apps["api"]), encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        for name in files:  # a fresh copy of each handler module per project
            sys.modules.pop(name.removesuffix(".py"), None)
        name = f"compiled_{folder.name}"
        loader = importlib.util.spec_from_file_location(name, module_file)
        assert loader is not None and loader.loader is not None
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module  # Pydantic resolves the models' names in their module
        loader.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module.app
