"""Turn schema-valid, cross-checked spec data into the typed model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from engine.spec.loader import Document, JsonPath
from engine.spec.model import (
    CONCURRENCY,
    DEDUPE_WINDOW,
    HEALTH_PATH,
    MAX_BODY,
    Action,
    App,
    Auth,
    Credential,
    Grant,
    HandlerAction,
    ProxyAction,
    RateLimit,
    RespondAction,
    Route,
    RunAction,
    SecretSource,
    Spec,
    Static,
    Target,
    Task,
    Webhook,
    WebSocket,
    env_name,
)
from engine.spec.units import parse_duration, parse_size


def build_spec(doc: Document, path: Path, sha256: str) -> Spec:
    """The Spec for a validated document."""
    data = doc.data
    apps = {n: _app(doc, n, a) for n, a in _map(data, "apps").items()}
    tasks = {n: _task(doc, n, t) for n, t in _map(data, "tasks").items()}
    callers, task_callers = _credentials(apps, "apps"), _credentials(apps, "tasks")
    return Spec(
        version=data["version"],
        project=data["project"],
        path=path,
        sha256=sha256,
        secrets={n: SecretSource(name=n, **_plain(s)) for n, s in _map(data, "secrets").items()},
        tasks={n: replace(t, credentials=task_callers.get(n, ())) for n, t in tasks.items()},
        apps={n: replace(a, credentials=callers.get(n, ())) for n, a in apps.items()},
        targets=_targets(_map(data, "targets")),
    )


def credential_variable(app: str) -> str:
    """The variable of the credential a caller presents to `app`: `ENGINE_CREDENTIAL_<APP>`."""
    return f"ENGINE_CREDENTIAL_{env_name(app)}"


def _credentials(
    apps: dict[str, App], callers: Literal["apps", "tasks"]
) -> dict[str, tuple[Credential, ...]]:
    """Each caller's credentials, for every app whose `auth.apps` (or `auth.tasks`) lists it
    (by that app's name), in one pass over the apps (one pass per caller was quadratic)."""
    found: dict[str, list[Credential]] = {}
    for name, a in sorted(apps.items()):
        if a.auth is None:
            continue
        credential = Credential(
            name, a.auth.secret, a.auth.kind, a.auth.header, credential_variable(name)
        )
        listed = a.auth.apps if callers == "apps" else a.auth.tasks
        for caller in dict.fromkeys(listed):
            found.setdefault(caller, []).append(credential)
    return {caller: tuple(credentials) for caller, credentials in found.items()}


def _dependencies(items: list[Any]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(app names, app -> variable for the `{app, env}` form) of a `depends_on` list."""
    names = tuple(d if isinstance(d, str) else d["app"] for d in items)
    named = {d["app"]: d["env"] for d in items if isinstance(d, dict)}
    return names, named


def _rate_limit(value: dict[str, Any] | None) -> RateLimit | None:
    if value is None:
        return None
    per = value["per"]
    return RateLimit(
        value["requests"],
        parse_duration(per) if isinstance(per, str) else float(per),
        value.get("by", "client"),
    )


def _targets(targets: dict[str, Any]) -> dict[str, Target]:
    """Every target by name; `local` is there even when the spec does not name it."""
    result = {"local": Target("local")}
    result.update({n: Target(name=n, **_plain(t)) for n, t in targets.items()})
    return result


def _map(data: dict[str, Any], key: str) -> dict[str, Any]:
    return data.get(key) or {}


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping without its `x-` extension keys."""
    return {k: v for k, v in value.items() if not k.startswith("x-")}


def handler(ref: str) -> HandlerAction:
    """`pkg.module:function` as a HandlerAction."""
    module, _, function = ref.partition(":")
    return HandlerAction(module, function)


def _env(doc: Document, path: JsonPath, env: dict[str, Any]) -> dict[str, str]:
    """Environment values as written: `yes` stays `yes`, `1.10` stays `1.10`."""
    result = {}
    for key, value in env.items():
        scalar = doc.scalars.get((*path, key))
        result[key] = value if isinstance(value, str) or scalar is None else scalar.text
    return result


def _grants(grants: list[Any]) -> tuple[Grant, ...]:
    result = []
    for grant in grants:
        if isinstance(grant, str):
            result.append(Grant(grant, env_name(grant)))
        else:
            variable = grant.get("env") or env_name(grant["name"])
            result.append(Grant(grant["name"], variable, bool(grant.get("file"))))
    return tuple(result)


def _auth(value: Any) -> tuple[Auth | None, bool]:
    """(auth, explicitly open) for an `auth:` value; (None, False) when absent."""
    if value is None:
        return None, False
    if value == "none":
        return None, True
    apps, tasks = tuple(value.get("apps", ())), tuple(value.get("tasks", ()))
    if "bearer" in value:
        return Auth("bearer", value["bearer"], apps=apps, tasks=tasks), False
    key = value["api_key"]
    return Auth("api_key", key["secret"], key.get("header", "X-API-Key"), apps, tasks), False


def _respond(respond: dict[str, Any] | None) -> RespondAction | None:
    if respond is None:
        return None
    return RespondAction(
        respond.get("status", 200), respond.get("json"), dict(respond.get("headers", {}))
    )


def _action(value: dict[str, Any]) -> Action:
    if "handler" in value:
        return handler(value["handler"])
    if "respond" in value:
        return _respond(value["respond"]) or RespondAction()
    if "run" in value:
        run = value["run"]
        wait = run.get("wait", False)
        if isinstance(wait, str):
            wait = parse_duration(wait)
        allow = tuple(run["allow"]) if "allow" in run else None
        respond, failed = _respond(run.get("respond")), _respond(run.get("failed"))
        return RunAction(run["task"], run.get("inputs"), wait, allow, respond, failed)
    proxy = value["proxy"]
    return ProxyAction(proxy["app"], proxy.get("path"), proxy.get("forward_auth", False))


def _route(route: dict[str, Any]) -> Route:
    auth, open_ = _auth(route.get("auth"))
    return Route(
        method=route["method"],
        path=route["path"],
        action=_action(route),
        query=dict(route.get("query", {})),
        body=route.get("body"),
        auth=auth,
        open=open_,
        rate_limit=_rate_limit(route.get("rate_limit")),
    )


def _webhook(hook: dict[str, Any]) -> Webhook:
    auth, open_ = _auth(hook.get("auth"))
    secrets = hook.get("secrets") or ([hook["secret"]] if "secret" in hook else [])
    return Webhook(
        path=hook["path"],
        provider=hook.get("provider", "github"),
        secrets=tuple(secrets),
        events={e: _action(a) for e, a in hook.get("events", {}).items()},
        action=_action(hook["action"]) if "action" in hook else None,
        max_body=parse_size(hook["max_body"]) if "max_body" in hook else MAX_BODY,
        dedupe=parse_duration(hook["dedupe"]) if "dedupe" in hook else DEDUPE_WINDOW,
        auth=auth,
        open=open_,
        rate_limit=_rate_limit(hook.get("rate_limit")),
    )


def _websocket(socket: dict[str, Any]) -> WebSocket:
    auth, open_ = _auth(socket.get("auth"))
    max_message = socket.get("max_message")
    return WebSocket(
        path=socket["path"],
        pattern=socket.get("pattern"),
        handler=handler(socket["handler"]) if "handler" in socket else None,
        source=handler(socket["source"]) if "source" in socket else None,
        interval=float(socket.get("interval", 1.0)),
        auth=auth,
        open=open_,
        heartbeat=socket.get("heartbeat"),
        max_message=parse_size(max_message) if max_message is not None else None,
        max_connections=socket.get("max_connections"),
        allow=tuple(socket["allow"]) if "allow" in socket else None,
        rate_limit=_rate_limit(socket.get("rate_limit")),
    )


def _app(doc: Document, name: str, app: dict[str, Any]) -> App:
    auth, _ = _auth(app.get("auth"))
    command = app.get("command")
    depends_on, endpoint_env = _dependencies(app.get("depends_on", []))
    return App(
        name=name,
        description=app.get("description", ""),
        port=app.get("port"),
        depends_on=depends_on,
        endpoint_env=endpoint_env,
        rate_limit=_rate_limit(app.get("rate_limit")),
        env=_env(doc, ("apps", name, "env"), app.get("env", {})),
        grants=_grants(app.get("secrets", [])),
        auth=auth,
        health=app.get("health", HEALTH_PATH),
        metrics=app.get("metrics", True),
        allowed_hosts=tuple(app["allowed_hosts"]) if "allowed_hosts" in app else None,
        routes=tuple(_route(r) for r in app.get("routes", [])),
        webhooks=tuple(_webhook(w) for w in app.get("webhooks", [])),
        websockets=tuple(_websocket(s) for s in app.get("websockets", [])),
        static=Static(**_plain(app["static"])) if "static" in app else None,
        command=tuple(command) if isinstance(command, list) else command,
        replicas=app.get("replicas", 1),
        include=tuple(app.get("include", [])),
    )


def _task(doc: Document, name: str, task: dict[str, Any]) -> Task:
    timeout = task.get("timeout")
    depends_on, endpoint_env = _dependencies(task.get("depends_on", []))
    return Task(
        name=name,
        handler=handler(task["handler"]),
        description=task.get("description", ""),
        inputs=dict(task.get("inputs", {})),
        depends_on=depends_on,
        endpoint_env=endpoint_env,
        grants=_grants(task.get("secrets", [])),
        env=_env(doc, ("tasks", name, "env"), task.get("env", {})),
        retries=task.get("retries", 0),
        timeout=parse_duration(timeout) if timeout is not None else None,
        include=tuple(task.get("include", [])),
        concurrency=task.get("concurrency", CONCURRENCY),
    )
