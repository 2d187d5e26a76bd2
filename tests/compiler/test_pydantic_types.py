"""JSON Schema -> Pydantic in generated modules: each mapped keyword validates as JSON
Schema would (FastAPI's 422 otherwise), and a keyword without a Pydantic form keeps
JSON Schema validation for its part, still as a FastAPI 422."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.runtime.conftest import TestClient
from tests.runtime.declare import compiled_app

ECHO = "def echo(body):\n    return body\n"
ORDER = {
    "type": "object",
    "required": ["kind", "lines"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["retail", "trade"]},
        "lines": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"},
                    "count": {"type": "integer", "minimum": 1, "default": 1},
                },
            },
        },
        "note": {"type": ["string", "null"], "maxLength": 5},
        "tags": {"type": "object", "additionalProperties": {"type": "integer"}},
        "ratio": {"type": "number", "exclusiveMaximum": 1},
        "class": {"type": "boolean"},
        "contact": {"anyOf": [{"type": "string", "format": "email"}, {"type": "integer"}]},
    },
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("types")
    route = {"method": "POST", "path": "/orders", "body": ORDER, "handler": "handlers:echo"}
    app = compiled_app(folder, {"routes": [route]}, {"handlers.py": ECHO})
    with TestClient(app) as test_client:
        yield test_client


GE = "greater_than_equal"
GOOD = {"kind": "trade", "lines": [{"sku": "ABC-1"}], "class": True, "contact": 7}


@pytest.mark.parametrize(
    "body",
    [GOOD, {**GOOD, "note": None}, {**GOOD, "tags": {"a": 1}, "ratio": 0.5}],
    ids=["minimal", "null-note", "tags-and-ratio"],
)
def test_valid_bodies_reach_the_handler_as_sent(client: Any, body: dict[str, Any]) -> None:
    response = client.post("/orders", json=body)
    assert (response.status_code, response.json()) == (200, body)


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"kind": "other"}, ["body", "kind"], "literal_error"),
        ({"lines": []}, ["body", "lines"], "too_short"),
        ({"lines": [{"sku": "abc"}]}, ["body", "lines", 0, "sku"], "string_pattern_mismatch"),
        ({"lines": [{"sku": "A-1", "count": 0}]}, ["body", "lines", 0, "count"], GE),
        ({"note": "too long"}, ["body", "note"], "string_too_long"),
        ({"tags": {"a": "1"}}, ["body", "tags", "a"], "int_type"),
        ({"ratio": 1}, ["body", "ratio"], "less_than"),
        ({"class": "yes"}, ["body", "class"], "bool_type"),
        ({"extra": 1}, ["body", "extra"], "extra_forbidden"),
        ({"contact": [1]}, ["body", "contact"], "json_schema"),
    ],
    ids=["enum", "min-items", "pattern", "minimum", "max-length", "additional", "exclusive",
         "strict-bool", "forbidden", "any-of-kept-as-json-schema"],
)  # fmt: skip
def test_invalid_bodies_are_fastapi_422s(
    client: Any, change: dict[str, Any], loc: list[Any], kind: str
) -> None:
    response = client.post("/orders", json={**GOOD, **change})
    assert response.status_code == 422
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(loc, kind)]


def test_the_openapi_document_shows_the_kept_schema_as_written(client: Any) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    contact = schemas["PostOrdersBody"]["properties"]["contact"]
    assert contact == {**ORDER["properties"]["contact"], "title": "Contact"}
    assert schemas["PostOrdersBody"]["properties"]["class"]["anyOf"][0] == {"type": "boolean"}


def test_the_module_is_ruff_formatted(tmp_path: Path) -> None:
    from engine.compiler import render_app
    from engine.load import load_spec

    (tmp_path / "handlers.py").write_text(ECHO)
    route = {"method": "POST", "path": "/orders", "body": ORDER, "handler": "handlers:echo"}
    import yaml

    spec = {"version": 1, "project": "shop", "apps": {"api": {"routes": [route]}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    loaded = load_spec(tmp_path / "spec.yaml", environ={})
    module = tmp_path / "module.py"
    module.write_text(render_app(loaded, loaded.apps["api"]))
    command = [sys.executable, "-m", "ruff", "format", "--line-length", "100", "--diff"]
    done = subprocess.run([*command, "--no-cache", str(module)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


VALUES = [0, 1, -1, 2.5, "1", "", "abc", "ABC-12", True, None, [], [1, 2], [1, 1], {}, {"a": 1}]
SCHEMAS = {
    "integer-minimum": {"type": "integer", "minimum": 0},
    "number-exclusive": {"type": "number", "exclusiveMaximum": 2, "exclusiveMinimum": -1},
    "multiple-of": {"type": "integer", "multipleOf": 2},
    "string-lengths": {"type": "string", "minLength": 1, "maxLength": 3},
    "pattern": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "array": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
    "enum": {"enum": ["abc", 1, None]},
    "const": {"const": "abc"},
    "type-list": {"type": ["string", "null"], "maxLength": 2},
    "map": {"type": "object", "additionalProperties": {"type": "integer"}},
    "unique-items-kept": {"type": "array", "uniqueItems": True},
    "any-of-kept": {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 3}]},
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=list(SCHEMAS))
def test_a_mapped_schema_accepts_what_json_schema_accepts(schema: dict[str, Any]) -> None:
    """For a spread of JSON values, the generated type (in a strict body model) and
    jsonschema agree on every one."""
    import jsonschema
    from pydantic import ValidationError

    from engine.compiler.literals import literal
    from engine.compiler.pydantic_types import Types

    types = Types(set())
    annotation, constraints = types.annotation(schema, "value", strict=True)
    field = f" = Field({', '.join(f'{k}={v!r}' for k, v in constraints.items())})"
    source = (
        "from typing import Annotated, Any, Literal\n"
        "from pydantic import BaseModel, ConfigDict, Field\n"
        "from engine.runtime.schemas import JsonSchema\n"
        "class Holder(BaseModel):\n"
        "    model_config = ConfigDict(strict=True)\n"
        f"    value: {literal(annotation)}{field if constraints else ''}\n"
    )
    module = types_module = ModuleType("mapped_schema")
    sys.modules[module.__name__] = module  # Pydantic resolves names in the model's module
    try:
        exec(source, module.__dict__)
    finally:
        del sys.modules[types_module.__name__]
    namespace = module.__dict__
    for value in VALUES:
        expected = jsonschema.Draft202012Validator(schema).is_valid(value)
        try:
            namespace["Holder"].model_validate({"value": value})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == expected, (value, source)


def test_names_the_module_uses_are_left_to_it(tmp_path: Path) -> None:
    """A property or parameter named like what the module imports (`Field`, `Query`) is
    renamed, with the spec's name as its alias."""
    body = {
        "type": "object",
        "properties": {"Field": {"type": "string"}, "model_config": {"type": "integer"}},
    }
    route = {"method": "POST", "path": "/{Query}", "body": body, "handler": "handlers:echo"}
    query = {"Request": {"type": "integer", "minimum": 1}}
    app = compiled_app(tmp_path, {"routes": [{**route, "query": query}]}, {"handlers.py": ECHO})
    sent = {"Field": "x", "model_config": 2}
    with TestClient(app) as client:
        assert client.post("/q?Request=1", json=sent).json() == sent
        assert client.post("/q?Request=0", json=sent).status_code == 422
