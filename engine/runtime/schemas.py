"""JSON Schema validation for the parts of a schema no Pydantic type expresses faithfully.

    body: Annotated[Any, JsonSchema({"anyOf": [...]})]

The compiler maps the common subset of JSON Schema to Pydantic types; what is left (e.g.
`anyOf`, `oneOf`, `allOf`, `not`, `$ref`, `patternProperties`, `uniqueItems`) is checked by
`jsonschema` inside Pydantic's validation, so a failure is one of FastAPI's own 422 errors,
and the OpenAPI document shows the schema as written.
"""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = ["JsonSchema"]


class JsonSchema:
    """`Annotated` metadata: the value must satisfy `schema` (checked when the module loads)."""

    def __init__(self, schema: dict[str, Any] | bool) -> None:
        import jsonschema  # only apps with such schemas pay for it

        kind = jsonschema.validators.validator_for(schema)
        kind.check_schema(schema)
        self.schema = schema
        self.validator = kind(schema)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        if isinstance(self.schema, bool):
            return {} if self.schema else {"not": {}}
        return dict(self.schema)

    def check(self, value: Any) -> Any:
        """`value` if it satisfies the schema; else a Pydantic error saying where and why."""
        import jsonschema

        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return value
        where = ".".join(str(p) for p in error.absolute_path)
        reason = f"{where}: {error.message}" if where else error.message
        raise PydanticCustomError("json_schema", "{reason}", {"reason": reason})
