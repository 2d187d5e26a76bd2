"""The state of one module being built: its imports, the names it uses, its blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.compiler.layout import Block, call, identifier, model_source, statement
from engine.compiler.literals import Code, Construct
from engine.compiler.pydantic_types import Types, python_name, unique
from engine.compiler.sources import Sources
from engine.runs.inputs import input_schema
from engine.spec.model import (
    Action,
    App,
    Auth,
    HandlerAction,
    RateLimit,
    RespondAction,
    RunAction,
    Spec,
    env_name,
)

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


class ModuleBuilder:
    """Collects imports, names and blocks for one app."""

    def __init__(self, spec: Spec, app: App, sources: Sources) -> None:
        self.spec = spec
        self.app = app
        self.sources = sources
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
        key = (auth.kind, auth.secret, auth.header, auth.apps, auth.tasks)
        if key not in self.guards:
            name = unique(python_name(auth.secret, set()), self.taken)
            apps = _callers(auth)
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
        apps = _callers(auth)
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
            self.flush_models()
        return self.task_models[task]

    def flush_models(self) -> None:
        """Add the models the annotations made so far as blocks (before their first use)."""
        for model in self.types.models:
            self.blocks.append(Block(model_source(model)))
        self.types.models.clear()


def import_lines(b: ModuleBuilder) -> list[str]:
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


def _callers(auth: Auth) -> dict[str, tuple[str, ...]]:
    """`apps=` and `tasks=` for an auth declaration, each only when the spec lists some."""
    listed = {"apps": auth.apps, "tasks": auth.tasks}
    return {key: names for key, names in listed.items() if names}
