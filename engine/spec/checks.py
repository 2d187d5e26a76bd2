"""Cross-checks a JSON Schema cannot express, run on schema-valid data.

References resolve, no dependency cycles, no duplicate routes, unique ports, handlers that
are importable names, expressions that parse, durations and sizes that mean something.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import re
from collections.abc import Iterator
from typing import Any

from engine.errors import Diagnostic
from engine.runtime.expressions import check_syntax
from engine.spec.loader import Document, JsonPath
from engine.spec.model import HEALTH_PATH, METRICS_PATH
from engine.spec.units import parse_duration, parse_size

_PARAM = re.compile(r"\{([^}]*)\}")
_BUILT_IN = {"health": "the health check", "metrics": "the metrics route"}
_BUILT_IN_HINT = {
    "health": "; set `health:` to another path",
    "metrics": "; set `metrics: false` or use another path",
}
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # RFC 9110's field-value
_WITH_ARTICLE = {"app": "an app", "task": "a task"}
_syntax_problem = functools.lru_cache(maxsize=4096)(check_syntax)  # specs repeat expressions


def cross_check(doc: Document) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """Return (errors, warnings) for a schema-valid spec."""
    checker = _Checker(doc)
    checker.run()
    return checker.errors, checker.warnings


class _Checker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data: dict[str, Any] = doc.data
        self.apps: dict[str, Any] = self.data.get("apps") or {}
        self.tasks: dict[str, Any] = self.data.get("tasks") or {}
        self.secrets: dict[str, Any] = self.data.get("secrets") or {}
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        # Specs repeat their schemas (blueprints, generated specs): each distinct one, by
        # its repr, is checked against the meta-schema once.
        self._schema_problems: dict[str, list[tuple[JsonPath, str]]] = {}

    def error(self, path: JsonPath, message: str) -> None:
        self.errors.append(self.doc.diagnostic(path, message))

    def warn(self, path: JsonPath, message: str) -> None:
        self.warnings.append(self.doc.diagnostic(path, message))

    def run(self) -> None:
        for name, app in self.apps.items():
            self.check_app(("apps", name), name, app)
        for name, task in self.tasks.items():
            self.check_task(("tasks", name), task)
        self.check_cycles()
        self.check_ports()
        for name, target in (self.data.get("targets") or {}).items():
            self.check_target(("targets", name), name, target)

    # references -------------------------------------------------------------------------

    def reference(self, path: JsonPath, name: str, kind: str, known: dict[str, Any]) -> bool:
        if name in known:
            return True
        message = f"there is no {kind} named {name!r}"
        close = difflib.get_close_matches(name, list(known), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif known:
            message += f"; the {kind}s are: {', '.join(sorted(known))}"
        else:
            message += f"; declare it under {kind}s:"
        self.error(path, message)
        return False

    def check_depends_on(self, path: JsonPath, owner: str | None, items: list[Any]) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if isinstance(item, dict) and _reserved(item["env"]):
                self.error(
                    (*path, i, "env"),
                    f"{item['env']} is set by engine itself; choose another variable",
                )
            name = _dependency(item)
            where = (*path, i) if isinstance(item, str) else (*path, i, "app")
            if name == owner:
                self.error(where, f"app {owner!r} depends on itself; remove it from depends_on")
            elif name in seen:
                self.error(where, f"{name!r} is listed twice in depends_on; keep one")
            else:
                self.reference(where, name, "app", self.apps)
            seen.add(name)

    def check_env(self, path: JsonPath, env: dict[str, Any]) -> None:
        """`${{ }}` is evaluated in actions only: in `env:` it would reach the process as
        text, so a whole expression there is refused; `$${{` still writes the text itself."""
        for key, value in env.items():
            scalar = self.doc.scalars.get((*path, key))
            escaped = scalar is not None and "$${{" in scalar.text
            if isinstance(value, str) and _EXPRESSION.search(value) and not escaped:
                hint = ""
                if "endpoints." in value:
                    hint = "; to get another app's URL under a name of your choice, use "
                    hint += "depends_on: [{app: NAME, env: " + key + "}]"
                self.error(
                    (*path, key),
                    "expressions (${{ }}) are not evaluated in env: values are fixed when the "
                    "app starts" + hint,
                )

    def check_schemas(self, path: JsonPath, schemas: dict[str, Any] | None) -> None:
        """Each value of `schemas` (input or parameter name -> JSON Schema) must be a schema."""
        for name, schema in (schemas or {}).items():
            self.check_schema((*path, name), schema)

    def check_schema(self, path: JsonPath, schema: Any) -> None:
        """A JSON Schema that the app or runner could not use is refused here, positioned."""
        key = repr(schema)
        problems = self._schema_problems.get(key)
        if problems is None:
            problems = self._schema_problems[key] = _schema_problems(schema)
        for where, message in problems:
            self.error((*path, *where), message)

    def check_rate_limit(self, path: JsonPath, limit: dict[str, Any] | None) -> None:
        if limit is None:
            return
        try:
            per = parse_duration(limit["per"])
        except ValueError as exc:
            self.error((*path, "per"), str(exc))
            return
        if per < 1 or per != int(per):
            self.error((*path, "per"), "a rate limit's window is whole seconds, at least 1s")

    def check_grants(self, path: JsonPath, grants: list[Any]) -> None:
        for i, grant in enumerate(grants):
            name = grant if isinstance(grant, str) else grant["name"]
            where = (*path, i) if isinstance(grant, str) else (*path, i, "name")
            self.reference(where, name, "secret", self.secrets)

    def check_auth(self, path: JsonPath, auth: Any, app: str | None = None) -> None:
        """`app` is set for an app's own auth, the only place `apps:` may appear."""
        if isinstance(auth, dict) and "bearer" in auth:
            self.reference((*path, "bearer"), auth["bearer"], "secret", self.secrets)
        elif isinstance(auth, dict) and "api_key" in auth:
            key = (*path, "api_key", "secret")
            self.reference(key, auth["api_key"]["secret"], "secret", self.secrets)
        for callers in ("apps", "tasks"):
            if isinstance(auth, dict) and callers in auth:
                self.check_callers((*path, callers), app, callers, auth[callers])

    def check_callers(self, path: JsonPath, app: str | None, key: str, callers: list[str]) -> None:
        """`auth.apps` (or `auth.tasks`): callers that exist, of the list's kind, and that
        depend on `app`."""
        if app is None:
            self.error(path, f"`{key}:` belongs on the app's own auth, not on one route's")
            return
        kind, known = ("app", self.apps) if key == "apps" else ("task", self.tasks)
        other, other_known = ("task", self.tasks) if key == "apps" else ("app", self.apps)
        for i, caller in enumerate(callers):
            if caller == app and key == "apps":
                self.error((*path, i), f"app {app!r} does not call itself; remove it")
            elif caller not in known and caller in other_known:
                self.error(
                    (*path, i),
                    f"{caller!r} is {_WITH_ARTICLE[other]}, not {_WITH_ARTICLE[kind]}; "
                    f"list it under `{other}s:` instead of `{key}:`",
                )
            elif self.reference((*path, i), caller, kind, known):
                deps = [_dependency(d) for d in known[caller].get("depends_on", [])]
                if app not in deps:
                    self.error(
                        (*path, i),
                        f"{kind} {caller!r} may call {app!r} only if {app!r} is in its "
                        f"depends_on; add it there",
                    )

    def check_handler(self, path: JsonPath, ref: str) -> None:
        module, _, function = ref.partition(":")
        for part in [*module.split("."), function]:
            if keyword.iskeyword(part):
                self.error(path, f"{part!r} is a Python keyword and cannot be imported; rename it")
                return

    def check_target(self, path: JsonPath, name: str, target: dict[str, Any]) -> None:
        if name == "local" and target.get("backend") != "local":
            message = "target 'local' is always this machine; give this target another name"
            self.error((*path, "backend"), message)
        for key in ("token", "run_store_password"):
            if key in target:
                self.reference((*path, key), target[key], "secret", self.secrets)

    # apps -------------------------------------------------------------------------------

    def check_app(self, path: JsonPath, name: str, app: dict[str, Any]) -> None:
        self.check_depends_on((*path, "depends_on"), name, app.get("depends_on", []))
        deps = [_dependency(d) for d in app.get("depends_on", [])]
        self.check_grants((*path, "secrets"), app.get("secrets", []))
        self.check_auth((*path, "auth"), app.get("auth"), name)
        self.check_env((*path, "env"), app.get("env", {}))
        self.check_rate_limit((*path, "rate_limit"), app.get("rate_limit"))
        if "command" in app:
            for key in ("routes", "webhooks", "websockets", "static"):
                if key in app:
                    self.error(
                        (*path, key),
                        f"app {name!r} runs its own command, so engine generates no {key} "
                        "for it; remove `command` or move these to another app",
                    )
        seen: dict[tuple[str, str], JsonPath] = {}
        health = app.get("health", HEALTH_PATH)
        if "command" not in app:
            seen[("GET", _shape(health))] = (*path, "health")
            if app.get("metrics", True):
                seen.setdefault(("GET", METRICS_PATH), (*path, "metrics"))
        for i, route in enumerate(app.get("routes", [])):
            self.check_route((*path, "routes", i), name, deps, route, seen)
        for i, hook in enumerate(app.get("webhooks", [])):
            self.check_webhook((*path, "webhooks", i), name, hook, seen)
        ws_seen: dict[tuple[str, str], JsonPath] = {}
        for i, socket in enumerate(app.get("websockets", [])):
            self.check_websocket((*path, "websockets", i), name, app, socket, ws_seen)

    def claim(self, seen: dict, method: str, route_path: str, where: JsonPath, app: str) -> None:
        key = (method, _shape(route_path))
        if key in seen:
            first = seen[key]
            what = _BUILT_IN.get(str(first[-1])) or self.doc.mark(first)
            origin = what if isinstance(what, str) else f"line {what.line}"
            hint = _BUILT_IN_HINT.get(str(first[-1]), "")
            self.error(
                (*where, "path"),
                f"{method} {route_path} is already declared in app {app!r} ({origin}){hint}",
            )
        else:
            seen[key] = where

    def check_route(
        self, path: JsonPath, app: str, deps: list[str], route: dict, seen: dict
    ) -> None:
        self.claim(seen, route["method"], route["path"], path, app)
        self.check_auth((*path, "auth"), route.get("auth"))
        self.check_schemas((*path, "query"), route.get("query"))
        if "body" in route:
            self.check_schema((*path, "body"), route["body"])
        self.check_rate_limit((*path, "rate_limit"), route.get("rate_limit"))
        params = set(_PARAM.findall(route["path"]))
        for param in params:
            if not param.isidentifier():
                self.error((*path, "path"), f"path parameter {{{param}}} must be a plain name")
        if "handler" in route:
            self.check_handler((*path, "handler"), route["handler"])
        if "proxy" in route:
            target = route["proxy"]["app"]
            where = (*path, "proxy", "app")
            if self.reference(where, target, "app", self.apps) and target not in deps:
                self.error(
                    where,
                    f"app {app!r} proxies to {target!r}, so {target!r} must be in its "
                    "depends_on (that is how its endpoint is injected)",
                )
            for param in _PARAM.findall(route["proxy"].get("path", "")):
                if param not in params:
                    self.error(
                        (*path, "proxy", "path"),
                        f"{{{param}}} is not a parameter of {route['path']}",
                    )
        if "run" in route:
            self.check_run((*path, "run"), route["run"])
        if "respond" in route:
            self.check_headers((*path, "respond", "headers"), route["respond"].get("headers"))
        for key in ("respond", "run"):
            self.check_expressions(route.get(key), (*path, key))

    def check_run(self, path: JsonPath, run: dict) -> None:
        task = run["task"]
        for i, name in enumerate(run.get("allow", [])):
            self.reference((*path, "allow", i), name, "task", self.tasks)
        if "${{" in task:
            if "allow" not in run:
                self.error(
                    (*path, "task"),
                    "a task chosen by an expression needs `allow:`, the list of tasks "
                    "callers may start",
                )
        else:
            self.reference((*path, "task"), task, "task", self.tasks)
        if isinstance(run.get("wait"), str):
            self.parse((*path, "wait"), parse_duration, run["wait"])
        if "failed" in run and not run.get("wait"):
            self.error(
                (*path, "failed"),
                "`failed:` is the reply to a waited run that failed; set `wait:` or remove it",
            )
        for key in ("respond", "failed"):
            if key in run:
                self.check_headers((*path, key, "headers"), run[key].get("headers"))

    def check_headers(self, path: JsonPath, headers: dict[str, Any] | None) -> None:
        """Response headers must be sendable: token names, one-line Latin-1 values."""
        for name, value in (headers or {}).items():
            if not _TOKEN.fullmatch(name):
                self.error((*path, name), f"{name!r} is not an HTTP header name")
            elif not isinstance(value, str):
                self.error((*path, name), "a header value is text; quote it")
            elif not _FIELD_VALUE.fullmatch(value):
                self.error(
                    (*path, name),
                    "a header value must be one line of printable Latin-1 text (HTTP's rule)",
                )

    def check_webhook(self, path: JsonPath, app: str, hook: dict, seen: dict) -> None:
        self.claim(seen, "POST", hook["path"], path, app)
        provider = hook.get("provider", "github")
        names = hook.get("secrets") or ([hook["secret"]] if "secret" in hook else [])
        key = "secrets" if "secrets" in hook else "secret"
        for i, name in enumerate(names):
            where = (*path, key, i) if key == "secrets" else (*path, key)
            self.reference(where, name, "secret", self.secrets)
        if provider == "plain":
            if "events" in hook:
                self.error((*path, "events"), "a plain webhook has no events; use `action:`")
            if "action" not in hook:
                self.error(path, "a plain webhook needs `action:` (a run or respond)")
        else:
            if not names:
                self.error(path, f"a {provider} webhook needs `secret:` to check signatures")
            if "action" in hook:
                self.error(
                    (*path, "action"), f"a {provider} webhook routes by `events:`, not `action:`"
                )
        self.check_auth((*path, "auth"), hook.get("auth"))
        self.check_rate_limit((*path, "rate_limit"), hook.get("rate_limit"))
        actions = [((*path, "events", e), a) for e, a in hook.get("events", {}).items()]
        if "action" in hook:
            actions.append(((*path, "action"), hook["action"]))
        for where, action in actions:
            if "run" in action:
                self.check_run((*where, "run"), action["run"])
            if "respond" in action:
                headers = action["respond"].get("headers")
                self.check_headers((*where, "respond", "headers"), headers)
            self.check_expressions(action, where)
        self.parse((*path, "max_body"), parse_size, hook.get("max_body"))
        self.parse((*path, "dedupe"), parse_duration, hook.get("dedupe"))

    def check_websocket(
        self, path: JsonPath, app: str, spec: dict, socket: dict, seen: dict
    ) -> None:
        self.claim(seen, "WS", socket["path"], path, app)
        self.check_auth((*path, "auth"), socket.get("auth"))
        self.check_rate_limit((*path, "rate_limit"), socket.get("rate_limit"))
        if "allow" in socket:
            if socket.get("pattern") != "task-runner":
                self.error((*path, "allow"), "`allow` is for the task-runner pattern only")
            for i, task in enumerate(socket["allow"]):
                self.reference((*path, "allow", i), task, "task", self.tasks)
        for key in ("handler", "source"):
            if key in socket:
                self.check_handler((*path, key), socket[key])
        pattern = socket.get("pattern")
        if "source" in socket and pattern != "stream":
            self.error((*path, "source"), "`source` is for the stream pattern only")
        if pattern == "chat" and "{room}" not in socket["path"]:
            self.error((*path, "path"), "a chat WebSocket's path needs a {room} parameter")
        if pattern in ("broadcast", "chat") and spec.get("replicas", 1) > 1:
            self.warn(
                (*path, "pattern"),
                f"{pattern} keeps its clients in one process, but app {app!r} has "
                f"{spec['replicas']} replicas: clients on different replicas won't see each other",
            )
        self.parse((*path, "max_message"), parse_size, socket.get("max_message"))

    # tasks ------------------------------------------------------------------------------

    def check_task(self, path: JsonPath, task: dict) -> None:
        self.check_handler((*path, "handler"), task["handler"])
        self.check_depends_on((*path, "depends_on"), None, task.get("depends_on", []))
        self.check_grants((*path, "secrets"), task.get("secrets", []))
        self.check_env((*path, "env"), task.get("env", {}))
        self.check_schemas((*path, "inputs"), task.get("inputs"))
        self.parse((*path, "timeout"), parse_duration, task.get("timeout"))

    # whole spec -------------------------------------------------------------------------

    def parse(self, path: JsonPath, parser: Any, value: Any) -> None:
        if value is None:
            return
        try:
            parser(value)
        except ValueError as exc:
            self.error(path, str(exc))

    def check_cycles(self) -> None:
        graph = {
            name: [_dependency(d) for d in app.get("depends_on", [])]
            for name, app in self.apps.items()
        }
        for cycle in _cycles(graph):
            start = cycle[0]
            index = graph[start].index(cycle[1])
            self.error(
                ("apps", start, "depends_on", index),
                "dependency cycle: " + " -> ".join([*cycle, start]) + "; break one of these links",
            )

    def check_ports(self) -> None:
        owners: dict[int, str] = {}
        for name, app in self.apps.items():
            port = app.get("port")
            if port is None:
                continue
            if port in owners:
                self.error(
                    ("apps", name, "port"),
                    f"port {port} is already used by app {owners[port]!r}; give each app its own",
                )
            else:
                owners[port] = name

    def check_expressions(self, value: Any, path: JsonPath) -> None:
        """Expressions are evaluated in actions only; elsewhere `${{` is plain text."""
        for where, text in _strings(value, path):
            if "${{" not in text:
                continue
            problem = _syntax_problem(text)
            if problem:
                # The column is within the string, so show the string it counts in.
                shown = text if len(text) <= 60 else text[:57] + "..."
                self.error(where, f"expression error in {shown!r}: {problem}")


def _reserved(variable: str) -> bool:
    """A variable engine sets for every process, which a named endpoint must not replace."""
    base = {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "PYTHONUNBUFFERED"}
    return variable in base or variable.startswith("ENGINE_")


def _dependency(item: Any) -> str:
    """The app named by a `depends_on` item: `backend` or `{app: backend, env: VAR}`."""
    return item if isinstance(item, str) else item["app"]


def _schema_problems(schema: Any) -> list[tuple[JsonPath, str]]:
    """Where in `schema` it fails the JSON Schema meta-schema (the most telling problem),
    with a did-you-mean for a misspelt type."""
    import jsonschema
    from jsonschema.exceptions import best_match

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = best_match(_meta_validator(cls).iter_errors(schema))
    if error is None:
        return []
    message = f"not a valid JSON Schema: {error.message}"
    choices = _meta_choices(error)
    if isinstance(error.instance, str) and choices:
        message = f"not a valid JSON Schema: {error.instance!r} is not a type"
        close = difflib.get_close_matches(error.instance, choices, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the types are: {', '.join(choices)}"
        message += "; " + hint
    return [(tuple(error.absolute_path), message)]


@functools.cache
def _meta_validator(cls: Any) -> Any:
    """A validator of schemas of `cls`'s draft (made once: its construction resolves the
    meta-schema's references)."""
    return cls(cls.META_SCHEMA)


def _meta_choices(error: Any) -> list[str]:
    """The names a meta-schema `enum` allows (JSON Schema's simple types), if that is the error."""
    if error.validator == "enum":
        return [c for c in error.validator_value if isinstance(c, str)]
    found: list[str] = []
    for sub in error.context or []:
        found += _meta_choices(sub)
    return sorted(set(found))


def _strings(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))
    elif isinstance(value, str):
        yield path, value


def _shape(path: str) -> str:
    """A route path with parameter names erased: `/x/{a}` and `/x/{b}` are the same route."""
    return _PARAM.sub("{}", path.rstrip("/") or "/")


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of apps, starting at its smallest name."""
    result = []
    for group in _strong_components(graph):
        if len(group) < 2:
            continue
        start = min(group)
        result.append(_shortest_loop(graph, group, start))
    return result


def _shortest_loop(graph: dict[str, list[str]], group: set[str], start: str) -> list[str]:
    """The shortest walk from `start` back to itself inside `group` (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for dep in sorted(graph[node]):
                if dep == start:
                    loop = [node]
                    while loop[-1] != start:
                        loop.append(came_from[loop[-1]])
                    return loop[::-1]
                if dep in group and dep not in came_from:
                    came_from[dep] = node
                    following.append(dep)
        frontier = following
    return [start]


def _strong_components(graph: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so that deep graphs cannot exhaust the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            dep = next((d for d in deps if d in graph), None)
            if dep is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif dep not in index:
                index[dep] = low[dep] = len(index)
                stack.append(dep)
                on_stack.add(dep)
                work.append((dep, iter(graph[dep])))
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
    return groups
