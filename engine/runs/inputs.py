"""A task's inputs: the JSON Schema built from its `inputs:` map, and validation of a run's.

Every input listed is required unless its schema has a `default`; the default is filled
in before validation, so the stored run shows the value the handler was called with.
Inputs not listed are rejected: the handler would fail on an unexpected keyword anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from engine.errors import RunInputError


def input_schema(inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON Schema object of a task whose `inputs:` map is `inputs` (name -> schema)."""
    return {
        "type": "object",
        "properties": {name: dict(schema) for name, schema in inputs.items()},
        "required": [name for name, schema in inputs.items() if "default" not in schema],
        "additionalProperties": False,
    }


class InputValidator:
    """Checks runs' inputs against one task's input schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self._schema = schema
        self._validator = Draft202012Validator(schema)

    def validate(self, inputs: object) -> dict[str, Any]:
        """The inputs with defaults filled in; raises RunInputError naming the bad field."""
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise RunInputError("", "inputs must be a JSON object")
        filled = dict(inputs)
        for name, schema in self._schema.get("properties", {}).items():
            if name not in filled and isinstance(schema, Mapping) and "default" in schema:
                filled[name] = copy.deepcopy(schema["default"])
        error = best_match(self._validator.iter_errors(filled))
        if error is not None:
            raise RunInputError(_field(error), error.message)
        return filled


def _field(error: ValidationError) -> str:
    """The dotted path of the input an error is about (the missing or extra one too)."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        path += [name for name in error.validator_value if name not in error.instance][:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        path += sorted(name for name in error.instance if name not in known)[:1]
    return ".".join(path)
