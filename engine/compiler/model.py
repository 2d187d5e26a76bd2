"""The render model: every identifier and literal of a generated module, computed here.

Templates only print what this module computes. Spec text reaches the output as `repr()`
of a validated value (via `literal`) or as an identifier checked by `identifier()`.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from engine.compiler.literals import Code, Construct, literal
from engine.spec.model import (
    Action,
    App,
    Auth,
    HandlerAction,
    ProxyAction,
    RateLimit,
    RespondAction,
    Route,
    RunAction,
    Spec,
    env_name,
)


@dataclass(frozen=True)
class Import:
    """`from module import name as alias`."""

    module: str
    name: str
    alias: str

    @property
    def line(self) -> str:
        return f"from {self.module} import {self.name} as {self.alias}"


@dataclass(frozen=True)
class Call:
    """`rt.function(app, name=value, ...)`: one declaration in the generated module."""

    function: str
    arguments: tuple[tuple[str, str], ...]


@dataclass
class AppModule:
    """All a template needs to print one app's module."""

    spec_file: str
    spec_sha256: str
    project: str
    app: str
    create: Call
    calls: list[Call] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    runtime_names: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The docstring's first line; quotes are escaped so no name can end the docstring."""
        text = f"App {self.app!r} of project {self.project!r}, generated from {self.spec_file!r}."
        return text.replace("\\", "\\\\").replace('"', "\\x22")


def identifier(text: str) -> str:
    """`text` if it is a Python identifier and not a keyword; otherwise ValueError."""
    if not text.isidentifier() or keyword.iskeyword(text):
        raise ValueError(f"{text!r} is not a usable Python identifier")
    return text


class _ModuleBuilder:
    """Collects imports and calls for one app, giving each handler a unique alias."""

    def __init__(self, spec: Spec, app: App) -> None:
        self.spec = spec
        self.app = app
        self.imports: dict[str, Import] = {}
        self.runtime_names: set[str] = set()
        self.grant_vars = {g.secret: g.variable for g in app.grants}

    def function(self, handler: HandlerAction) -> Code:
        """The alias under which the user's function is imported."""
        ref = handler.ref
        if ref not in self.imports:
            parts = [identifier(p) for p in handler.module.split(".")]
            base = "_".join(parts) + "__" + identifier(handler.function)
            alias, n = base, 1
            taken = {i.alias for i in self.imports.values()}
            while alias in taken:
                n += 1
                alias = f"{base}_{n}"
            self.imports[ref] = Import(".".join(parts), handler.function, alias)
        return Code(self.imports[ref].alias)

    def runtime(self, name: str, **arguments: object) -> Construct:
        """A call of a runtime helper class, e.g. `Bearer(secret_env='TOKEN')`."""
        self.runtime_names.add(name)
        return Construct(name, tuple(arguments.items()))

    def auth(self, auth: Auth | None, open_: bool) -> Construct | None:
        """The effective auth of an endpoint: its own, or none if open, or the app's."""
        chosen = None if open_ else (auth or self.app.auth)
        if chosen is None:
            return None
        variable = self.grant_vars.get(chosen.secret, env_name(chosen.secret))
        callers = {"apps": chosen.apps} if chosen.apps else {}
        if chosen.kind == "bearer":
            return self.runtime("Bearer", secret_env=variable, **callers)
        return self.runtime("ApiKey", header=chosen.header, secret_env=variable, **callers)

    def rate_limit(self, limit: RateLimit | None) -> dict[str, Construct]:
        """`rate_limit=RateLimit(...)` as a keyword argument, or nothing without a limit."""
        if limit is None:
            return {}
        construct = self.runtime("RateLimit", requests=limit.requests, per=limit.per, by=limit.by)
        return {"rate_limit": construct}

    def action(self, action: Action) -> Construct:
        if isinstance(action, RespondAction):
            return self.runtime(
                "Respond", status=action.status, json=action.json, headers=action.headers or None
            )
        if isinstance(action, RunAction):
            replies = {
                key: self.action(reply)
                for key, reply in (("respond", action.respond), ("failed", action.failed))
                if reply is not None
            }
            return self.runtime(
                "Run",
                task=action.task,
                inputs=action.inputs,
                wait=action.wait,
                allow=action.allow,
                **replies,
            )
        raise ValueError(f"{type(action).__name__} is not a webhook action")

    def call(self, function: str, **arguments: object) -> Call:
        args = []
        for name, value in arguments.items():
            prefix = len(name) + 5  # four spaces of indent, the name and "="
            args.append((identifier(name), literal(value, 4, prefix - 4)))
        return Call(identifier(function), tuple(args))


def build_module(spec: Spec, app: App) -> AppModule:
    """The render model of `app`'s generated module."""
    b = _ModuleBuilder(spec, app)
    calls = [_route_call(b, route) for route in app.routes]
    for hook in app.webhooks:
        calls.append(
            b.call(
                "add_webhook",
                path=hook.path,
                provider=hook.provider,
                secret_envs=tuple(b.grant_vars.get(s, env_name(s)) for s in hook.secrets),
                events={event: b.action(a) for event, a in hook.events.items()},
                action=b.action(hook.action) if hook.action else None,
                max_body=hook.max_body,
                dedupe=hook.dedupe,
                auth=b.auth(hook.auth, hook.open),
                **b.rate_limit(hook.rate_limit),
            )
        )
    for socket in app.websockets:
        calls.append(
            b.call(
                "add_websocket",
                path=socket.path,
                pattern=socket.pattern,
                handler=b.function(socket.handler) if socket.handler else None,
                source=b.function(socket.source) if socket.source else None,
                interval=socket.interval,
                auth=b.auth(socket.auth, socket.open),
                heartbeat=socket.heartbeat,
                max_message=socket.max_message,
                max_connections=socket.max_connections,
                **({"allow": socket.allow} if socket.allow is not None else {}),
                **b.rate_limit(socket.rate_limit),
            )
        )
    if app.static:
        calls.append(
            b.call(
                "add_static",
                path=app.static.path,
                directory=app.static.dir,
                private=private_files(spec),
            )
        )
    hosts = {"allowed_hosts": app.allowed_hosts} if app.allowed_hosts else {}
    create = b.call(
        "create_app",
        project=spec.project,
        name=app.name,
        description=app.description,
        health=app.health,
        **({} if app.metrics else {"metrics": False}),  # the default is left out of the code
        **hosts,
        **b.rate_limit(app.rate_limit),
    )
    return AppModule(
        spec_file=spec.path.name,
        spec_sha256=spec.sha256,
        project=spec.project,
        app=app.name,
        create=create,
        calls=calls,
        imports=sorted(b.imports.values(), key=lambda i: (i.module, i.name)),
        runtime_names=sorted(b.runtime_names),
    )


def private_files(spec: Spec) -> tuple[str, ...]:
    """The project's files a static folder must never serve: the spec and secret sources."""
    names = [spec.path.name]
    for source in spec.secrets.values():
        names += [name for name in (source.file, source.env_file) if name]
    return tuple(dict.fromkeys(names))


def _route_call(b: _ModuleBuilder, route: Route) -> Call:
    common = {
        "method": route.method,
        "path": route.path,
        "query": route.query or None,
        "body": route.body,
        "auth": b.auth(route.auth, route.open),
        **b.rate_limit(route.rate_limit),
    }
    action = route.action
    if isinstance(action, HandlerAction):
        return b.call("add_handler_route", **common, handler=b.function(action))
    if isinstance(action, ProxyAction):
        forward = {"forward_auth": True} if action.forward_auth else {}
        return b.call(
            "add_proxy_route", **common, target=action.app, target_path=action.path, **forward
        )
    if isinstance(action, RespondAction):
        return b.call("add_respond_route", **common, respond=b.action(action))
    return b.call("add_run_route", **common, run=b.action(action))
