"""The render model: every identifier and statement of a generated module, computed here.

Templates only print what this module computes. Spec text reaches the output as `repr()`
of a validated value (via `literal`) or as an identifier checked by `identifier()` or made
by `python_name()`.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Any

from engine.compiler.literals import WIDTH, Code, Construct, Subscript, literal, width
from engine.compiler.pydantic_types import Default, Model, Types, python_name, unique
from engine.compiler.sources import handler_signature
from engine.runs.inputs import input_schema
from engine.spec.model import (
    DEDUPE_WINDOW,
    MAX_BODY,
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

_PATH_PARAM = re.compile(r"{([^{}:]+)(?::[a-z]+)?}")
_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}
_IMPORTABLE = {
    "Annotated", "Any", "Literal", "Body", "Depends", "Path", "Query", "Request", "Response",
    "WebSocket", "BaseModel", "ConfigDict", "Field", "ApiKey", "Bearer", "RateLimit",
    "Respond", "Run", "JsonSchema",
}  # fmt: skip


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
class Block:
    """One top-level part of the module (statements, a class, a function), printed as it
    is, with a `comment` above it if there is one."""

    code: str
    comment: str = ""


def model_source(model: Model) -> str:
    """The class statement of a generated Pydantic model."""
    lines = [f"class {model.name}(BaseModel):", statement("    model_config = ", model.config, 4)]
    for item in model.fields:
        head = f"    {item.name}: "
        annotation = literal(item.annotation, 4, len(head) - 4, tail=0)
        if item.default is None:
            lines.append(head + annotation)
            continue
        value = item.default.value if isinstance(item.default, Default) else item.default
        prefix = f"{head}{annotation} = "
        lines.append(prefix + literal(value, 4, len(prefix) - 4, tail=0))
    return "\n".join(lines)


@dataclass
class AppModule:
    """All a template needs to print one app's module."""

    spec_file: str
    spec_sha256: str
    project: str
    app: str
    blocks: list[Block]
    import_lines: list[str]
    handler_imports: list[Import]

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


def call(callee: str, /, *args: Any, **kwargs: Any) -> Construct:
    """`callee(arg, ..., key=value, ...)` as a value `literal` lays out."""
    pairs: list[tuple[str | None, Any]] = [(None, a) for a in args]
    pairs += [(identifier(k), v) for k, v in kwargs.items()]
    return Construct(callee, tuple(pairs))


def statement(head: str, value: Any, indent: int = 0) -> str:
    """`head` followed by `value`, e.g. `x = ` + a call, laid out as ruff would."""
    return head + literal(value, indent, len(head) - indent, tail=0)


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Param:
    """A parameter `name: annotation = default` of a generated endpoint."""

    name: str
    annotation: Any
    default: Any = _NO_DEFAULT

    def source(self, indent: int | None = None) -> str:
        """Flat, or laid out on a line of its own at `indent` (before a comma)."""
        default = "" if self.default is _NO_DEFAULT else f" = {literal(self.default)}"
        head = f"{self.name}: "
        if indent is None:
            return head + literal(self.annotation, 0, 0, 0) + default
        return head + literal(self.annotation, indent, len(head), len(default) + 1) + default


def function(
    decorator: Construct, name: str, params: list[Param], returns: str, body: Any, prefix: str
) -> str:
    """`@decorator` over `async def name(params) -> returns:` with a one-line `body`."""
    head = f"async def {name}("
    tail = f") -> {returns}:"
    inner = ", ".join(p.source() for p in params)
    if width(head + inner + tail) <= WIDTH:
        signature = head + inner + tail
    elif 4 + width(inner) <= WIDTH:
        signature = f"{head}\n    {inner}\n{tail}"
    else:
        signature = head + "\n" + "".join(f"    {p.source(4)},\n" for p in params) + tail
    return f"@{literal(decorator, 0, 1, tail=0)}\n{signature}\n    {prefix}" + literal(
        body, 4, len(prefix), tail=0
    )


class _ModuleBuilder:
    """Collects imports, names and blocks for one app."""

    def __init__(self, spec: Spec, app: App) -> None:
        self.spec = spec
        self.app = app
        self.imports: dict[str, Import] = {}
        # Names the module imports or defines itself, which nothing generated may take.
        self.taken: set[str] = {"app", "rt", "request", "websocket", *_IMPORTABLE}
        self.types = Types(self.taken)
        self.names: set[str] = set()  # fastapi / engine.runtime.app names used
        self.blocks: list[Block] = []
        self.grant_vars = {g.secret: g.variable for g in app.grants}
        self.guards: dict[tuple[object, ...], str] = {}
        self.task_models: dict[str, str] = {}

    def function(self, handler: HandlerAction) -> Code:
        """The alias under which the user's function is imported."""
        ref = handler.ref
        if ref not in self.imports:
            parts = [identifier(p) for p in handler.module.split(".")]
            alias = unique("_".join(parts) + "__" + identifier(handler.function), self.taken)
            self.imports[ref] = Import(".".join(parts), handler.function, alias)
        return Code(self.imports[ref].alias)

    def declaration(self, name: str, /, *args: object, **arguments: object) -> Construct:
        """A runtime declaration, e.g. `Respond(status=201)`, imported from engine.runtime.app."""
        self.names.add(name)
        return call(name, *args, **arguments)

    def secret_env(self, auth: Auth) -> str:
        return self.grant_vars.get(auth.secret, env_name(auth.secret))

    def effective(self, auth: Auth | None, open_: bool) -> Auth | None:
        """The auth of an endpoint: its own, or none if open, or the app's."""
        return None if open_ else (auth or self.app.auth)

    def guard(self, auth: Auth) -> str:
        """The name of the module's dependency checking `auth`, declared on first use."""
        key = (auth.kind, auth.secret, auth.header, auth.apps)
        if key not in self.guards:
            name = unique(python_name(auth.secret, set()), self.taken)
            apps = {"apps": auth.apps} if auth.apps else {}
            if auth.kind == "bearer":
                made = call("rt.bearer", Code("app"), self.secret_env(auth), **apps)
            else:
                made = call("rt.api_key", Code("app"), auth.header, self.secret_env(auth), **apps)
            self.blocks.append(Block(statement(f"{name} = ", made)))
            self.guards[key] = name
        return self.guards[key]

    def declared_auth(self, auth: Auth | None) -> dict[str, Construct]:
        """`auth=Bearer(...)` for a webhook or WebSocket, which check it themselves."""
        if auth is None:
            return {}
        apps = {"apps": auth.apps} if auth.apps else {}
        if auth.kind == "bearer":
            return {"auth": self.declaration("Bearer", secret_env=self.secret_env(auth), **apps)}
        made = self.declaration(
            "ApiKey", header=auth.header, secret_env=self.secret_env(auth), **apps
        )
        return {"auth": made}

    def rate_limit(self, limit: RateLimit | None) -> dict[str, Construct]:
        """`rate_limit=RateLimit(...)` as a keyword argument, or nothing without a limit."""
        if limit is None:
            return {}
        by = {"by": limit.by} if limit.by != "client" else {}
        made = self.declaration("RateLimit", requests=limit.requests, per=limit.per, **by)
        return {"rate_limit": made}

    def respond(self, action: RespondAction) -> dict[str, Any]:
        """The keyword arguments of a Respond, without those restating a default."""
        found: dict[str, Any] = {}
        if action.status != 200:
            found["status"] = action.status
        if action.json is not None:
            found["json"] = action.json
        if action.headers:
            found["headers"] = action.headers
        return found

    def run(self, action: RunAction) -> dict[str, Any]:
        """The keyword arguments of a Run after its task, without defaults."""
        found: dict[str, Any] = {}
        if action.inputs is not None:
            found["inputs"] = action.inputs
        if action.wait is not False:
            found["wait"] = action.wait
        if action.allow is not None:
            found["allow"] = action.allow
        for key, reply in (("respond", action.respond), ("failed", action.failed)):
            if reply is not None:
                found[key] = self.declaration("Respond", **self.respond(reply))
        return found

    def action(self, action: Action) -> Construct:
        """A webhook's action as a declaration."""
        if isinstance(action, RespondAction):
            return self.declaration("Respond", **self.respond(action))
        if isinstance(action, RunAction):
            return self.declaration("Run", action.task, **self.run(action))
        raise ValueError(f"{type(action).__name__} is not a webhook action")

    def task_model(self, task: str) -> str | None:
        """The model of `task`'s inputs, added on first use (None for an unknown task)."""
        if task not in self.spec.tasks:
            return None
        if task not in self.task_models:
            schema = input_schema(self.spec.tasks[task].inputs)
            self.task_models[task] = self.types.model(schema, f"{task} inputs", strict=True)
            self._flush_models()
        return self.task_models[task]

    def _flush_models(self) -> None:
        for model in self.types.models:
            self.blocks.append(Block(model_source(model)))
        self.types.models.clear()


def build_module(spec: Spec, app: App) -> AppModule:
    """The render model of `app`'s generated module."""
    b = _ModuleBuilder(spec, app)
    b.blocks.append(Block(statement("app = ", _create(b, spec, app))))
    for route in app.routes:
        _route(b, route)
    if app.webhooks:
        comment = (
            "# Webhooks check a signature over the raw bytes, so each is a plain Starlette"
            " route,\n# without FastAPI's parameter parsing; rt.webhook lists it in the"
            " OpenAPI document."
        )
        for n, hook in enumerate(app.webhooks):
            _webhook(b, hook, comment if n == 0 else "")
    for socket in app.websockets:
        _websocket(b, socket)
    if app.static:
        private = {"private": private_files(spec)}
        files = call("rt.static_files", app.static.dir, **private)
        mount = call("app.mount", app.static.path, files, name="static")
        b.blocks.append(Block(statement("", mount)))
    return AppModule(
        spec_file=spec.path.name,
        spec_sha256=spec.sha256,
        project=spec.project,
        app=app.name,
        blocks=b.blocks,
        import_lines=_import_lines(b),
        handler_imports=sorted(b.imports.values(), key=lambda i: (i.module, i.name)),
    )


def _create(b: _ModuleBuilder, spec: Spec, app: App) -> Construct:
    options: dict[str, Any] = {"project": spec.project, "name": app.name}
    if app.description:
        options["description"] = app.description
    if app.health != "/health":
        options["health"] = app.health
    if not app.metrics:
        options["metrics"] = False
    if app.allowed_hosts:
        options["allowed_hosts"] = app.allowed_hosts
    return call("rt.create_app", **options, **b.rate_limit(app.rate_limit))


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "root"


def _route(b: _ModuleBuilder, route: Route) -> None:
    name = unique(f"{route.method.lower()}_{_slug(route.path)}", b.taken)
    endpoint = unique(name.upper(), b.taken)
    action = route.action
    decorator: dict[str, Any] = {}
    errors: set[int] = set()
    dependencies: list[Construct] = []
    if route.rate_limit is not None or b.app.rate_limit is not None:
        errors.add(429)
    if route.rate_limit is not None:
        limit = unique(f"{name}_limit", b.taken)
        by = {"by": route.rate_limit.by} if route.rate_limit.by != "client" else {}
        made = call(
            "rt.rate_limit", Code("app"), route.rate_limit.requests, route.rate_limit.per, **by
        )
        b.blocks.append(Block(statement(f"{limit} = ", made)))
        dependencies.append(call("Depends", Code(limit)))
    auth = b.effective(route.auth, route.open)
    if auth is not None:
        dependencies.append(call("Depends", Code(b.guard(auth))))
        errors |= {401, 403}
        b.names.add("Depends")

    # What the endpoint does, built once.
    if isinstance(action, HandlerAction):
        made = call("rt.handler", b.function(action))
        signature = handler_signature(b.spec.root, action.module, action.function)
        if signature.doc:  # the handler's own words, as FastAPI shows a function's docstring
            decorator["description"] = signature.doc
    elif isinstance(action, RespondAction):
        made = call("rt.respond", Code("app"), **b.respond(action))
        if action.status != 200:
            decorator["status_code"] = action.status
    elif isinstance(action, ProxyAction):
        forward = {"forward_auth": True} if action.forward_auth else {}
        made = call(
            "rt.proxy", Code("app"), action.app, *([action.path] if action.path else []), **forward
        )
        decorator["summary"] = f"Proxy to {action.app}"
    else:
        made = call("rt.run", Code("app"), action.task, **b.run(action))
        decorator.update(_run_text(b.spec, action))
        decorator.update(_run_answers(action, errors))
    params, passed = _parameters(b, route, errors)
    b._flush_models()
    b.blocks.append(Block(statement(f"{endpoint} = ", made)))
    if dependencies:
        decorator["dependencies"] = dependencies
        b.names.add("Depends")
    if errors:
        decorator["responses"] = call("rt.responses", *sorted(errors))
    decorator_call = call(f"app.{route.method.lower()}", route.path, **decorator)
    body = call(endpoint, Code("request"), **passed)
    code = function(decorator_call, name, params, "Response", body, "return await ")
    b.blocks.append(Block(code))


def _run_text(spec: Spec, action: RunAction) -> dict[str, str]:
    """The OpenAPI summary of a run route, and the task's description if it has one."""
    if action.allow is not None:
        names = list(action.allow)
        listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        return {"summary": f"Run {listed}"}
    task = spec.tasks.get(action.task)
    described = {"description": task.description} if task and task.description else {}
    return {"summary": f"Run {action.task}", **described}


def _run_answers(action: RunAction, errors: set[int]) -> dict[str, Any]:
    """The decorator's status code and answer model of a run route."""
    if action.allow is not None:
        errors |= {403, 404}
    if action.respond is not None:
        status = action.respond.status
        return {"status_code": status} if status != 200 else {}
    if action.wait is False:
        return {"status_code": 202, "response_model": Code("rt.RunStarted")}
    errors.add(202)  # the wait ran out first
    return {"response_model": Code("rt.RunFinished")}


def _parameters(
    b: _ModuleBuilder, route: Route, errors: set[int]
) -> tuple[list[Param], dict[str, Any]]:
    """The endpoint's parameters and what it passes on: path, query, body."""
    required = [Param("request", Code("Request"))]
    optional: list[Param] = []
    used: set[str] = {"request"}
    b.names.add("Request")
    path: dict[str, Code] = {}
    for key in dict.fromkeys(_PATH_PARAM.findall(route.path)):
        name = python_name(key, used)
        if name == key:
            required.append(Param(name, Code("str")))
        else:
            b.names |= {"Annotated", "Path"}
            required.append(
                Param(name, Subscript("Annotated", (Code("str"), call("Path", alias=key))))
            )
        path[key] = Code(name)
    query: dict[str, Code] = {}
    for key, schema in route.query.items():
        name = python_name(key, used)
        annotation, constraints = b.types.annotation(schema, f"{name} query", strict=False)
        if name != key:
            constraints["alias"] = key
        if isinstance(schema, dict) and schema.get("description"):
            constraints["description"] = schema["description"]
        # Lists and anything but a plain type are body parameters unless they say Query.
        if constraints or not isinstance(annotation, Code) or annotation == "Any":
            b.names |= {"Annotated", "Query"}
            annotation = Subscript("Annotated", (annotation, call("Query", **constraints)))
        if isinstance(schema, dict) and "default" in schema:
            optional.append(Param(name, annotation, schema["default"]))
        else:
            required.append(Param(name, annotation))
        query[key] = Code(name)
    body = _body(b, route, errors, used)
    if body is not None:
        (required if body.default is _NO_DEFAULT else optional).append(body)
    passed: dict[str, Any] = {}
    if path:
        passed["path"] = path
    if route.query:
        passed["query"] = query
    if body is not None:
        passed["body"] = Code(body.name)
    return required + optional, passed


def _body(b: _ModuleBuilder, route: Route, errors: set[int], used: set[str]) -> Param | None:
    """The body parameter, or None for no body."""
    name = python_name("body", used)
    hint = f"{route.method.lower()} {route.path} body"
    if route.body is not None and route.body is not True:
        annotation, _ = b.types.annotation(route.body, hint, strict=True)
        return Param(name, annotation)
    action = route.action
    if isinstance(action, HandlerAction) and route.body is None:
        model = handler_signature(b.spec.root, action.module, action.function).body_model
        if model is not None:  # the handler's own model: FastAPI validates into it
            alias = b.function(HandlerAction(action.module, model))
            return Param(name, alias)
    if (
        isinstance(action, RunAction)
        and action.inputs is None
        and route.body is None
        and "${{" not in action.task
    ):
        model = b.task_model(action.task)
        if model is not None:
            schema = input_schema(b.spec.tasks[action.task].inputs)
            if schema["required"]:
                return Param(name, Code(model))
            return Param(name, Code(f"{model} | None"), None)
    if route.method not in _WITH_BODY or isinstance(action, ProxyAction):
        return None
    errors.add(415)
    b.names |= {"Annotated", "Any", "Body"}
    return Param(name, Subscript("Annotated", (Code("Any"), call("Body"))), None)


def _webhook(b: _ModuleBuilder, hook: Any, comment: str) -> None:
    name = unique(f"webhook_{_slug(hook.path)}", b.taken)
    options: dict[str, Any] = {}
    if hook.provider != "github":
        options["provider"] = hook.provider
    if hook.secrets:
        options["secret_envs"] = tuple(b.grant_vars.get(s, env_name(s)) for s in hook.secrets)
    if hook.events:
        options["events"] = {event: b.action(a) for event, a in hook.events.items()}
    if hook.action:
        options["action"] = b.action(hook.action)
    if hook.max_body != MAX_BODY:
        options["max_body"] = hook.max_body
    if hook.dedupe != DEDUPE_WINDOW and hook.provider != "plain":
        options["dedupe"] = hook.dedupe
    options |= b.declared_auth(b.effective(hook.auth, hook.open))
    options |= b.rate_limit(hook.rate_limit)
    made = call("rt.webhook", Code("app"), hook.path, **options)
    route = call("app.add_route", hook.path, Code(name), methods=["POST"], include_in_schema=False)
    b.blocks.append(
        Block(statement(f"{name} = ", made) + "\n" + statement("", route), comment=comment)
    )


def _websocket(b: _ModuleBuilder, socket: Any) -> None:
    slug = _slug(socket.path)
    name = unique(f"{slug}_socket", b.taken)
    function_name = unique(f"websocket_{slug}", b.taken)
    options: dict[str, Any] = {}
    if socket.handler:
        options["handler"] = b.function(socket.handler)
    if socket.source:
        options["source"] = b.function(socket.source)
    if socket.interval != 1.0:
        options["interval"] = socket.interval
    options |= b.declared_auth(b.effective(socket.auth, socket.open))
    for key in ("heartbeat", "max_message", "max_connections", "allow"):
        if getattr(socket, key) is not None:
            options[key] = getattr(socket, key)
    options |= b.rate_limit(socket.rate_limit)
    pattern = [socket.pattern] if socket.pattern else []
    made = call("rt.websocket", Code("app"), socket.path, *pattern, **options)
    b.blocks.append(Block(statement(f"{name} = ", made)))
    b.names.add("WebSocket")
    decorator = call("app.websocket", socket.path)
    code = function(
        decorator,
        function_name,
        [Param("websocket", Code("WebSocket"))],
        "None",
        call(name, Code("websocket")),
        "await ",
    )
    b.blocks.append(Block(code))


def _import_lines(b: _ModuleBuilder) -> list[str]:
    """The module's imports, in isort's sections: standard library, third party, engine."""
    typing = sorted(
        b.types.names & {"Annotated", "Any", "Literal"} | b.names & {"Annotated", "Any"}
    )
    fastapi = sorted(b.names & {"Body", "Depends", "Path", "Query", "Request", "WebSocket"})
    if any(block.code and "-> Response:" in block.code for block in b.blocks):
        fastapi = sorted({*fastapi, "Response"})
    pydantic = sorted(b.types.names & {"BaseModel", "ConfigDict", "Field"})
    runtime = sorted(b.names & {"ApiKey", "Bearer", "RateLimit", "Respond", "Run"})
    sections = []
    if typing:
        sections.append([f"from typing import {', '.join(typing)}"])
    third = []
    if fastapi:
        third.append(f"from fastapi import {', '.join(fastapi)}")
    if pydantic:
        third.append(f"from pydantic import {', '.join(pydantic)}")
    if third:
        sections.append(third)
    first = ["from engine.runtime import app as rt"]
    if runtime:
        first.append(f"from engine.runtime.app import {', '.join(runtime)}")
    if "JsonSchema" in b.types.names:
        first.append("from engine.runtime.schemas import JsonSchema")
    sections.append(first)
    return ["\n".join(section) for section in sections]


def private_files(spec: Spec) -> tuple[str, ...]:
    """The project's files a static folder must never serve: the spec and secret sources."""
    names = [spec.path.name]
    for source in spec.secrets.values():
        names += [name for name in (source.file, source.env_file) if name]
    return tuple(dict.fromkeys(names))
