"""Turn a request into validated values: path, query (converted by type) and JSON body.

Failures raise `InvalidRequest`, answered 422 with FastAPI's error shape:
`{"detail": [{"type", "loc", "msg", "input"}]}`.

Decisions: a query parameter is required unless its schema has a `default`; path values
stay strings; without a body schema the body is optional (empty -> None) but must be JSON
when present.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from engine.runtime import jsonbody

__all__ = ["InvalidRequest", "Parsed", "RequestSchema", "openapi_extra"]

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}
_PATH_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}")


class InvalidRequest(Exception):
    """Raised when a request fails its declared schemas; `errors` are FastAPI-shaped."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Parsed:
    """A request's validated values, as handlers and expressions see them."""

    path: dict[str, str]
    query: dict[str, Any]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestSchema:
    """The declared query and body schemas of one route, with their validators built once."""

    query: dict[str, dict[str, Any]] | None = None
    body: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for schema in [*(self.query or {}).values(), *([self.body] if self.body else [])]:
            import jsonschema  # only apps with schemas pay for it

            jsonschema.validators.validator_for(schema).check_schema(schema)

    async def parse(self, request: Request) -> Parsed:
        """Validate `request`; raises InvalidRequest listing every problem found."""
        errors: list[dict[str, Any]] = []
        query = self._query(request, errors)
        body = self._body(await request.body(), errors)
        if errors:
            raise InvalidRequest(errors)
        headers = {key.lower(): value for key, value in request.headers.items()}
        return Parsed(dict(request.path_params), query, body, headers)

    def _query(self, request: Request, errors: list[dict[str, Any]]) -> dict[str, Any]:
        if self.query is None:
            return dict(request.query_params)
        values: dict[str, Any] = {}
        for name, schema in self.query.items():
            raw = request.query_params.getlist(name)
            if not raw:
                if "default" in schema:
                    values[name] = schema["default"]
                else:
                    errors.append(_error("missing", ["query", name], "Field required", None))
                continue
            try:
                values[name] = _convert(raw, schema)
            except ValueError as exc:
                errors.append(_error(exc.args[0], ["query", name], exc.args[1], exc.args[2]))
                continue
            errors.extend(_schema_errors(values[name], schema, ["query", name]))
        return values

    def _body(self, raw: bytes, errors: list[dict[str, Any]]) -> Any:
        if not raw.strip():
            if self.body is not None:
                errors.append(_error("missing", ["body"], "Field required", None))
            return None
        try:
            body = jsonbody.loads(raw)
        except jsonbody.BadJson as exc:
            if exc.pos is not None:
                errors.append(_error("json_invalid", ["body", exc.pos], "JSON decode error", {}))
            else:
                errors.append(_error("json_invalid", ["body"], str(exc), {}))
            return None
        if self.body is not None:
            errors.extend(_schema_errors(body, self.body, ["body"]))
        return body


def openapi_extra(path: str, schema: RequestSchema) -> dict[str, Any]:
    """OpenAPI `parameters` and `requestBody` for a route, so `/docs` shows them."""
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    for name, sub in (schema.query or {}).items():
        params.append(
            {"name": name, "in": "query", "required": "default" not in sub, "schema": sub}
        )
    extra: dict[str, Any] = {"parameters": params} if params else {}
    if schema.body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema.body}},
        }
    return extra


def _error(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def _schema_errors(value: Any, schema: dict[str, Any], loc: list[Any]) -> list[dict[str, Any]]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [_error(e.validator, [*loc, *_error_path(e)], e.message, e.instance) for e in errors]


def _error_path(error: Any) -> list[Any]:
    """Where the error is; for a missing key, the key itself (as FastAPI reports it)."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        path += [k for k in error.validator_value if k not in error.instance][:1]
    return path


def _convert(raw: list[str], schema: dict[str, Any]) -> Any:
    """Convert query strings by the schema's type; raises ValueError(type, msg, input)."""
    kind = schema.get("type")
    if kind == "array":
        item = schema.get("items", {})
        return [_scalar(value, item.get("type")) for value in raw]
    return _scalar(raw[-1], kind)


def _scalar(value: str, kind: Any) -> Any:
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            raise ValueError(
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                value,
            ) from None
    if kind == "number":
        try:
            number = float(value)
            if not math.isfinite(number):  # nan, inf: not JSON, so not a number here
                raise ValueError(value)
            return number
        except ValueError:
            raise ValueError(
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
                value,
            ) from None
    if kind == "boolean":
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(
            "bool_parsing", "Input should be a valid boolean, unable to interpret input", value
        )
    return value
