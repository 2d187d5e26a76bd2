"""The spec language's JSON Schema file: well-formed, portable to draft-07 editors, documented,
and accepting exactly what SPEC.md describes. (Ajv's strict mode and a real editor's hover
are tested in tests/editors.)"""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "engine.schema.json"

# Keywords that mean the same in draft 2020-12 and draft-07 (plus the `$schema`/`$id`/`$defs`
# bookkeeping and annotations). `items` must be a single schema, never the array form.
ALLOWED_KEYWORDS = {
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "type",
    "enum",
    "const",
    "properties",
    "patternProperties",
    "additionalProperties",
    "required",
    "items",
    "minItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "pattern",
    "propertyNames",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
}
# Keywords whose value is a map of name -> subschema.
SCHEMA_MAPS = {"properties", "patternProperties", "$defs"}
# Keywords whose value is one subschema.
SCHEMA_VALUES = {"items", "additionalProperties", "propertyNames", "not", "if", "then", "else"}
# Keywords whose value is a list of subschemas.
SCHEMA_LISTS = {"oneOf", "anyOf", "allOf"}

X_PATTERN = {"^x-": {}}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def walk(node: Any, where: str = "#", in_if: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """Yield (location, subschema, inside an `if` condition) for every subschema."""
    yield where, node, in_if
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in SCHEMA_MAPS:
            for name, sub in value.items():
                yield from walk(sub, f"{where}/{key}/{name}", in_if)
        elif key in SCHEMA_VALUES:
            yield from walk(value, f"{where}/{key}", in_if or key == "if")
        elif key in SCHEMA_LISTS:
            for i, sub in enumerate(value):
                yield from walk(sub, f"{where}/{key}/{i}", in_if)


def resolve(schema: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/$defs/"), ref
    return schema["$defs"][ref.removeprefix("#/$defs/")]


# --- the file itself ------------------------------------------------------------------------


def test_file_is_tidy_json() -> None:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    for number, line in enumerate(text.splitlines(), 1):
        assert line == line.rstrip(), f"line {number}: trailing whitespace"
        assert "\t" not in line, f"line {number}: tab"
        assert (len(line) - len(line.lstrip(" "))) % 2 == 0, f"line {number}: indent"
    json.loads(text)


def test_header(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"]
    assert schema["description"]


def test_valid_against_draft_2020_12_meta_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_valid_against_draft_07_meta_schema(schema: dict[str, Any]) -> None:
    draft7 = copy.deepcopy(schema)
    del draft7["$schema"]
    jsonschema.Draft7Validator.check_schema(draft7)


def test_only_portable_keywords(schema: dict[str, Any]) -> None:
    for where, node, _ in walk(schema):
        assert isinstance(node, dict | bool), where
        if isinstance(node, bool):
            continue
        unknown = set(node) - ALLOWED_KEYWORDS
        assert not unknown, f"{where}: {sorted(unknown)}"
        if "items" in node:
            assert isinstance(node["items"], dict), f"{where}: items must be one schema"


ANNOTATIONS = {"title", "description", "examples", "default", "$comment"}


def test_refs_carry_only_annotations_and_resolve(schema: dict[str, Any]) -> None:
    # A property's own description stands beside its `$ref` (draft 2020-12), so an editor's
    # hover shows it rather than the definition's. Draft-07 ignores keywords beside `$ref`:
    # only annotations may stand there, so both drafts still validate the same.
    used = set()
    for where, node, _ in walk(schema):
        if isinstance(node, dict) and "$ref" in node:
            assert set(node) - {"$ref"} <= ANNOTATIONS, where
            resolve(schema, node["$ref"])
            used.add(node["$ref"].removeprefix("#/$defs/"))
    assert used == set(schema["$defs"])


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    for where, node, _ in walk(schema):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if sub is True and _restates(node):
                    continue
                assert isinstance(sub, dict), f"{where}/properties/{name}"
                assert sub.get("description", "").strip(), f"{where}/properties/{name}"


def _restates(node: dict[str, Any]) -> bool:
    """A branch naming the keys it requires as `properties: {key: true}`: a restatement of
    properties defined beside it, which Ajv's strict mode (strictRequired) asks for."""
    properties = node.get("properties", {})
    return bool(properties) and all(v is True for v in properties.values())


def test_every_defined_object_is_closed_but_allows_x_keys(schema: dict[str, Any]) -> None:
    # An `if` condition is a predicate, not an object definition: closing it would change it.
    checked = 0
    for where, node, in_if in walk(schema):
        if isinstance(node, dict) and "properties" in node and not in_if and not _restates(node):
            assert node.get("additionalProperties") is False, where
            assert node.get("patternProperties") == X_PATTERN, where
            checked += 1
    assert checked >= 15


def test_names_pattern(schema: dict[str, Any]) -> None:
    assert schema["$defs"]["name"]["pattern"] == "^[a-z][a-z0-9-]{0,61}[a-z0-9]$"
    for key in ("apps", "tasks", "secrets"):
        assert schema["properties"][key]["propertyNames"] == {"$ref": "#/$defs/name"}


def test_exactly_one_action_shapes(schema: dict[str, Any]) -> None:
    # The validator recognises these exact shapes to print a helpful message.
    defs = schema["$defs"]

    def one(*keys: str) -> dict[str, Any]:
        return {"properties": dict.fromkeys(keys, True), "required": list(keys)}

    assert defs["route"]["oneOf"] == [one("handler"), one("respond"), one("run"), one("proxy")]
    assert defs["webhook_action"]["oneOf"] == [one("run"), one("respond")]
    assert defs["websocket"]["oneOf"] == [one("pattern"), one("handler")]
    assert defs["webhook"]["not"] == one("secret", "secrets")


def test_defaults_from_the_spec(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert defs["app"]["properties"]["health"]["default"] == "/health"
    assert defs["app"]["properties"]["replicas"]["default"] == 1
    assert defs["app"]["properties"]["auth"]["default"] == "none"
    assert defs["respond"]["properties"]["status"]["default"] == 200
    assert defs["webhook"]["properties"]["provider"]["default"] == "github"
    assert defs["webhook"]["properties"]["max_body"]["default"] == "25MB"
    assert defs["webhook"]["properties"]["dedupe"]["default"] == "72h"
    assert defs["websocket"]["properties"]["interval"]["default"] == 1
    assert defs["task"]["properties"]["retries"]["default"] == 0
    assert defs["task"]["properties"]["concurrency"]["default"] == 2
    assert defs["auth"]["oneOf"][2]["properties"]["api_key"]["properties"]["header"]["default"] == (
        "X-API-Key"
    )


# --- what it accepts --------------------------------------------------------------------------

# The whole-spec example of SPEC.md, as the YAML loader produces it.
WHOLE_SPEC: dict[str, Any] = {
    "version": 1,
    "project": "shop",
    "secrets": {
        "webhook-api-key": {"env": "WEBHOOK_API_KEY"},
        "github-secret": {"file": "secrets/github.txt"},
    },
    "tasks": {
        "add-one": {
            "handler": "tasks:add_one_task",
            "inputs": {"x": {"type": "integer"}},
            "depends_on": ["add-one-app"],
            "secrets": ["github-secret"],
            "env": {"LOG_LEVEL": "info"},
            "retries": 2,
            "timeout": 60,
        }
    },
    "apps": {
        "add-one-app": {
            "description": "Adds one to x.",
            "routes": [
                {
                    "method": "GET",
                    "path": "/",
                    "query": {"x": {"type": "integer"}},
                    "handler": "handlers:add_one",
                }
            ],
        }
    },
}

# Every other construct SPEC.md shows, in one spec.
EVERYTHING: dict[str, Any] = {
    "$schema": "../../schemas/engine.schema.json",
    "version": 1,
    "project": "shop",
    "x-owner": {"team": "payments"},
    "uses": [{"blueprint": "github-webhook", "with": {"task": "deploy"}, "prefix": "ci"}],
    "secrets": {
        "api-token": {"env": "API_TOKEN"},
        "github-secret": {"file": "secrets/github.txt"},
        "github-secret-old": {"env_file": ".env", "key": "OLD_GITHUB_SECRET", "x-note": "rotate"},
        "svix-secret": {"env": "SVIX_SECRET"},
    },
    "tasks": {
        "deploy": {
            "handler": "tasks.deploy:run",
            "description": "Deploys a commit.",
            "inputs": {"commit": {"type": "string"}, "anything": True},
            "secrets": [
                "github-secret",
                {"name": "api-token", "env": "TOKEN"},
                {"name": "svix-secret", "file": True},
            ],
            "timeout": "5m",
            "include": ["templates/*.j2"],
            "concurrency": 4,
            "x-cost-center": 42,
        },
        "build": {"handler": "tasks:build", "retries": 0, "timeout": 1.5},
    },
    "apps": {
        "backend": {
            "port": 8081,
            "env": {"LOG_LEVEL": "debug", "WORKERS": 2, "DEBUG": False, "BASE": "${BASE:-x}"},
            "auth": {"bearer": "api-token"},
            "health": "/ready",
            "replicas": 2,
            "routes": [
                {"method": "GET", "path": "/x/{name}", "respond": {"json": "${{ path.name }}"}},
            ],
        },
        "api": {
            "depends_on": ["backend"],
            "auth": {"api_key": {"secret": "api-token"}},
            "static": {"path": "/", "dir": "web/"},
            "include": ["data/*.csv"],
            "routes": [
                {
                    "method": "POST",
                    "path": "/hi",
                    "body": {"type": "object"},
                    "auth": "none",
                    "respond": {
                        "status": 201,
                        "json": {"a": "${{ body.a }}"},
                        "headers": {"X-Id": "1"},
                    },
                },
                {"method": "POST", "path": "/deploy", "run": {"task": "deploy", "wait": False}},
                {
                    "method": "POST",
                    "path": "/run/{name}",
                    "run": {
                        "task": "${{ path.name }}",
                        "allow": ["deploy", "build"],
                        "inputs": {"commit": "${{ body.sha }}"},
                        "wait": "30s",
                    },
                },
                {"method": "PUT", "path": "/w", "run": {"task": "build", "wait": True}},
                {"method": "PATCH", "path": "/n", "run": {"task": "build", "wait": 10}},
                {"method": "DELETE", "path": "/p/{name}", "proxy": {"app": "backend"}},
                {
                    "method": "GET",
                    "path": "/q/{name}",
                    "proxy": {"app": "backend", "path": "/x/{name}"},
                    "x-doc": "proxied",
                },
            ],
            "webhooks": [
                {
                    "path": "/github-webhook",
                    "provider": "github",
                    "secret": "github-secret",
                    "events": {
                        "push": {
                            "run": {"task": "deploy", "inputs": {"commit": "${{ body.after }}"}}
                        },
                        "release": {"respond": {"status": 204}},
                    },
                    "max_body": "25MB",
                    "dedupe": "72h",
                },
                {
                    "path": "/rotating",
                    "secrets": ["github-secret", "github-secret-old"],
                    "max_body": 1024,
                    "dedupe": 3600,
                },
                {
                    "path": "/svix",
                    "provider": "standard",
                    "secret": "svix-secret",
                    "events": {"invoice.paid": {"run": {"task": "build"}}},
                    "max_body": "1.5 MiB",
                },
                {
                    "path": "/plain",
                    "provider": "plain",
                    "auth": {"bearer": "api-token"},
                    "action": {"run": {"task": "build", "inputs": "${{ body }}"}},
                },
            ],
            "websockets": [
                {"path": "/echo", "pattern": "echo"},
                {"path": "/broadcast", "pattern": "broadcast"},
                {"path": "/chat/{room}", "pattern": "chat"},
                {
                    "path": "/stream",
                    "pattern": "stream",
                    "source": "feeds:next_value",
                    "interval": 1,
                },
                {"path": "/task-runner", "pattern": "task-runner", "auth": "none"},
                {
                    "path": "/custom",
                    "handler": "ws:handle",
                    "heartbeat": 30,
                    "max_message": "64KiB",
                    "max_connections": 10,
                },
            ],
        },
        "dashboard": {"command": "streamlit run dash.py --server.port {port}"},
        "server": {"command": ["python", "server.py", "{port}"], "port": 9000},
    },
}


def errors(validator: jsonschema.Draft202012Validator, spec: dict[str, Any]) -> list[Any]:
    return list(validator.iter_errors(spec))


def test_whole_spec_example_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    assert errors(validator, WHOLE_SPEC) == []


def test_everything_in_the_spec_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    assert errors(validator, EVERYTHING) == []


def test_draft_07_reads_it_the_same(schema: dict[str, Any]) -> None:
    draft7 = copy.deepcopy(schema)
    del draft7["$schema"]
    v7 = jsonschema.Draft7Validator(draft7)
    assert list(v7.iter_errors(WHOLE_SPEC)) == []
    assert list(v7.iter_errors(EVERYTHING)) == []
    bad = copy.deepcopy(WHOLE_SPEC)
    bad["apps"]["add-one-app"]["routes"][0]["respond"] = {"status": 200}
    assert [e.validator for e in v7.iter_errors(bad)] == ["oneOf"]


def with_change(path: list[Any], value: Any, base: dict[str, Any] = WHOLE_SPEC) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    node = spec
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return spec


def without(path: list[Any], base: dict[str, Any] = WHOLE_SPEC) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    node = spec
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return spec


ROUTE = ["apps", "add-one-app", "routes", 0]
WEBSOCKETS = ["apps", "add-one-app", "websockets"]
WEBHOOKS = ["apps", "add-one-app", "webhooks"]


@pytest.mark.parametrize(
    ("spec", "path", "keyword"),
    [
        pytest.param(with_change(["colour"], "red"), [], "additionalProperties", id="top-unknown"),
        pytest.param(
            with_change(["apps", "add-one-app", "replica"], 2),
            ["apps", "add-one-app"],
            "additionalProperties",
            id="app-unknown",
        ),
        pytest.param(
            with_change([*ROUTE, "verb"], "GET"), ROUTE, "additionalProperties", id="route-unknown"
        ),
        pytest.param(without(["version"]), [], "required", id="no-version"),
        pytest.param(with_change(["version"], 2), ["version"], "const", id="version-2"),
        pytest.param(with_change(["project"], "Shop"), ["project"], "pattern", id="bad-project"),
        pytest.param(
            with_change(["tasks", "add-one", "depends_on"], ["add_one_app"]),
            ["tasks", "add-one", "depends_on", 0],
            "oneOf",
            id="bad-name-reference",
        ),
        pytest.param(
            with_change(["tasks", "add-one", "handler"], "tasks.add_one_task"),
            ["tasks", "add-one", "handler"],
            "pattern",
            id="bad-handler",
        ),
        pytest.param(
            with_change([*ROUTE, "respond"], {"json": 1}), ROUTE, "oneOf", id="route-two-actions"
        ),
        pytest.param(without([*ROUTE, "handler"]), ROUTE, "oneOf", id="route-no-action"),
        pytest.param(
            with_change([*ROUTE, "method"], "get"), [*ROUTE, "method"], "enum", id="method-case"
        ),
        pytest.param(
            with_change(
                WEBHOOKS, [{"path": "/gh", "secret": "github-secret", "secrets": ["github-secret"]}]
            ),
            [*WEBHOOKS, 0],
            "not",
            id="webhook-secret-and-secrets",
        ),
        pytest.param(
            with_change(WEBSOCKETS, [{"path": "/stream", "pattern": "stream"}]),
            [*WEBSOCKETS, 0],
            "required",
            id="stream-without-source",
        ),
        pytest.param(
            with_change(WEBSOCKETS, [{"path": "/ws", "pattern": "echo", "handler": "ws:handle"}]),
            [*WEBSOCKETS, 0],
            "oneOf",
            id="websocket-pattern-and-handler",
        ),
        pytest.param(
            with_change(["secrets", "github-secret"], {"env": "A", "file": "b"}),
            ["secrets", "github-secret"],
            "oneOf",
            id="secret-two-sources",
        ),
        pytest.param(
            with_change(["tasks", "add-one", "timeout"], "5 minutes"),
            ["tasks", "add-one", "timeout"],
            "oneOf",
            id="bad-duration",
        ),
    ],
)
def test_invalid_specs_fail_at_the_right_place(
    validator: jsonschema.Draft202012Validator, spec: dict[str, Any], path: list[Any], keyword: str
) -> None:
    found = errors(validator, spec)
    assert [(list(e.absolute_path), e.validator) for e in found] == [(path, keyword)]


def test_bad_map_key_is_reported_on_the_map(validator: jsonschema.Draft202012Validator) -> None:
    spec = copy.deepcopy(WHOLE_SPEC)
    spec["apps"]["Add_One"] = spec["apps"].pop("add-one-app")
    [error] = errors(validator, spec)
    assert error.json_path == "$.apps"
    assert error.instance == "Add_One"
    assert error.validator == "pattern"


def test_error_json_path(validator: jsonschema.Draft202012Validator) -> None:
    [error] = errors(validator, with_change([*ROUTE, "respond"], {"json": 1}))
    assert error.json_path == "$.apps['add-one-app'].routes[0]"


@pytest.mark.parametrize(
    "name",
    ["ab", "a1", "a-b", "a" * 63],
)
def test_good_names(validator: jsonschema.Draft202012Validator, name: str) -> None:
    assert errors(validator, with_change(["project"], name)) == []


@pytest.mark.parametrize(
    "name",
    ["a", "a" * 64, "1a", "a-", "-a", "A", "a_b", "a.b", ""],
)
def test_bad_names(validator: jsonschema.Draft202012Validator, name: str) -> None:
    assert errors(validator, with_change(["project"], name)) != []


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, True), (1.5, True), ("250ms", True), ("1.5h", True), ("7d", True), (-1, False)]
    + [("1 h", False), ("h", False), ("1w", False), (True, False)],
)
def test_durations(validator: jsonschema.Draft202012Validator, value: Any, ok: bool) -> None:
    assert (errors(validator, with_change(["tasks", "add-one", "timeout"], value)) == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), ("25MB", True), ("1 KiB", True), ("0.5GB", True), ("10B", True), (0, False)]
    + [(1.5, False), ("25mb", False), ("25TB", False), ("MB", False)],
)
def test_sizes(validator: jsonschema.Draft202012Validator, value: Any, ok: bool) -> None:
    webhook = {"path": "/gh", "secret": "github-secret", "max_body": value}
    assert (errors(validator, with_change(WEBHOOKS, [webhook])) == []) is ok


def test_x_keys_are_allowed_at_every_level(validator: jsonschema.Draft202012Validator) -> None:
    spec = copy.deepcopy(EVERYTHING)
    api = spec["apps"]["api"]
    for node in (
        api,
        api["static"],
        api["auth"],
        api["auth"]["api_key"],
        api["routes"][0]["respond"],
        api["routes"][2]["run"],
        api["routes"][6]["proxy"],
        api["webhooks"][0],
        api["webhooks"][0]["events"]["push"],
        api["websockets"][0],
        spec["tasks"]["deploy"]["secrets"][1],
        spec["uses"][0],
    ):
        node["x-extra"] = {"anything": [1, "two"]}
    assert errors(validator, spec) == []


def test_not_is_used_only_for_pairs_of_keys(schema: dict[str, Any]) -> None:
    # The validator words a `not` as "give either A or B, not both": keep every `not` that shape.
    # Rules a schema could only word badly (a plain webhook's `action`, a `command` app without
    # routes, `source` only on stream, `allow` with an expression task) are the validator's
    # cross-checks, with better messages.
    nots = [node["not"] for _, node, _ in walk(schema) if isinstance(node, dict) and "not" in node]
    assert nots
    for node in nots:
        assert set(node) - {"properties"} == {"required"} and len(node["required"]) == 2, node


def test_semantic_rules_are_left_to_the_validator(
    validator: jsonschema.Draft202012Validator,
) -> None:
    # Valid by the schema; engine's cross-checks reject them with a specific message.
    hooks = [
        {"path": "/plain", "provider": "plain", "events": {"x": {"respond": {}}}},
        {"path": "/gh", "action": {"respond": {}}},
    ]
    spec = with_change(WEBHOOKS, hooks)
    spec = with_change(["apps", "add-one-app", "command"], "python server.py {port}", spec)
    spec = with_change(WEBSOCKETS, [{"path": "/e", "pattern": "echo", "source": "f:g"}], spec)
    spec = with_change([*ROUTE, "run"], {"task": "${{ path.name }}"}, spec)
    del spec["apps"]["add-one-app"]["routes"][0]["handler"]
    assert errors(validator, spec) == []
