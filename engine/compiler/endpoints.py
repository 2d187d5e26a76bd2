"""Each route, webhook and WebSocket of an app as the statements of its generated module."""

from __future__ import annotations

import re
from typing import Any

from engine.compiler.builder import ModuleBuilder
from engine.compiler.layout import Block, Param, call, function, statement
from engine.compiler.literals import Code, Construct, Subscript
from engine.compiler.pydantic_types import python_name, unique
from engine.runs.inputs import input_schema
from engine.spec.model import (
    DEDUPE_WINDOW,
    MAX_BODY,
    HandlerAction,
    ProxyAction,
    RespondAction,
    Route,
    RunAction,
    Spec,
    Webhook,
    WebSocket,
    env_name,
)

_PATH_PARAM = re.compile(r"{([^{}:]+)(?::[a-z]+)?}")
_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "root"


def add_route(b: ModuleBuilder, route: Route) -> None:
    """The route's endpoint object, its models, and the decorated function calling it."""
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
        signature = b.sources.handler_signature(action.module, action.function)
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
    b.flush_models()
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
    b: ModuleBuilder, route: Route, errors: set[int]
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
        (required if body.required else optional).append(body)
    passed: dict[str, Any] = {}
    if path:
        passed["path"] = path
    if route.query:
        passed["query"] = query
    if body is not None:
        passed["body"] = Code(body.name)
    return required + optional, passed


def _body(b: ModuleBuilder, route: Route, errors: set[int], used: set[str]) -> Param | None:
    """The body parameter, or None for no body."""
    name = python_name("body", used)
    hint = f"{route.method.lower()} {route.path} body"
    if route.body is not None and route.body is not True:
        annotation, _ = b.types.annotation(route.body, hint, strict=True)
        return Param(name, annotation)
    action = route.action
    if isinstance(action, HandlerAction) and route.body is None:
        model = b.sources.handler_signature(action.module, action.function).body_model
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


def add_webhook(b: ModuleBuilder, hook: Webhook, comment: str) -> None:
    """The webhook's receiver and the plain Starlette route that serves it."""
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


def add_websocket(b: ModuleBuilder, socket: WebSocket) -> None:
    """The WebSocket's endpoint and the decorated function that serves it."""
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
