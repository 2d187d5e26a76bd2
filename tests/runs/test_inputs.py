from __future__ import annotations

import pytest

from engine.errors import RunInputError
from engine.runs.inputs import InputValidator, input_schema

SCHEMA = input_schema(
    {
        "x": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    }
)


UNEXPECTED = "Additional properties are not allowed ('z' was unexpected)"


def test_inputs_are_required_unless_they_have_a_default() -> None:
    assert SCHEMA["required"] == ["x", "tags"]
    assert SCHEMA["additionalProperties"] is False


def test_defaults_are_filled_in() -> None:
    valid = InputValidator(SCHEMA).validate({"x": 1, "tags": []})
    assert valid == {"x": 1, "tags": [], "mode": "fast"}


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ({"x": "a", "tags": []}, "x", "'a' is not of type 'integer'"),
        ({"tags": []}, "x", "'x' is a required property"),
        ({"x": 1, "tags": [1]}, "tags.0", "1 is not of type 'string'"),
        ({"x": 1, "tags": [], "mode": "odd"}, "mode", "'odd' is not one of ['fast', 'slow']"),
        ({"x": 1, "tags": [], "z": 2}, "z", UNEXPECTED),
        ([1], "", "inputs must be a JSON object"),
    ],
    ids=["type", "missing", "nested", "enum", "unexpected", "not-an-object"],
)  # fmt: skip
def test_bad_inputs_name_the_field(inputs: object, field: str, message: str) -> None:
    with pytest.raises(RunInputError) as caught:
        InputValidator(SCHEMA).validate(inputs)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_no_inputs_is_an_empty_object() -> None:
    assert InputValidator({"type": "object"}).validate(None) == {}
