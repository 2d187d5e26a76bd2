"""A task's form in the console: controls built from its inputs' JSON Schema, and a posted
form read back into inputs the runner's validator accepts (no browser, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.runs.inputs import InputValidator, input_schema
from engine.server.console_forms import PREFIX, FormField, form_fields, read_inputs

REPORT = input_schema(
    {
        "title": {"type": "string", "description": "The report's title", "maxLength": 80},
        "pages": {"type": "integer", "minimum": 1, "maximum": 50, "default": 3},
        "ratio": {"type": "number", "examples": [0.5]},
        "format": {"enum": ["pdf", "html"], "default": "html"},
        "level": {"enum": [1, 2, True]},
        "draft": {"type": "boolean", "default": False},
        "tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
        "email": {"type": "string", "format": "email", "default": "a@b.example"},
        "anything": {},
    }
)


def fields_by_name(**kwargs: Any) -> dict[str, FormField]:
    return {f.name: f for f in form_fields(REPORT, **kwargs)}


def posted(**values: str) -> dict[str, str]:
    return {PREFIX + name: value for name, value in values.items()}


def test_each_input_gets_the_control_its_schema_asks_for() -> None:
    fields = form_fields(REPORT)

    assert [(f.name, f.widget, f.input_type) for f in fields] == [
        ("title", "text", "text"),
        ("pages", "number", "number"),
        ("ratio", "number", "number"),
        ("format", "select", "text"),
        ("level", "select", "text"),
        ("draft", "checkbox", "text"),
        ("tags", "json", "text"),
        ("email", "text", "email"),
        ("anything", "json", "text"),
    ]
    assert all(f.form_name == PREFIX + f.name for f in fields)


def test_inputs_without_a_default_are_required_and_defaults_are_filled_in() -> None:
    fields = fields_by_name()

    assert {n for n, f in fields.items() if f.required} == {"title", "ratio", "level", "anything"}
    assert fields["pages"].value == "3"
    assert fields["format"].value == '"html"'
    assert fields["draft"].checked is False
    assert fields["tags"].value == '[\n  "a"\n]'
    assert fields["email"].value == "a@b.example"
    assert fields["title"].value == ""


def test_limits_hints_and_options_are_carried_over() -> None:
    fields = fields_by_name()

    assert fields["pages"].attrs == {"step": "1", "min": "1", "max": "50"}
    assert fields["ratio"].attrs == {"step": "any", "placeholder": "e.g. 0.5"}
    assert fields["title"].attrs == {"maxlength": "80"}
    assert fields["title"].hint == "The report's title"
    assert fields["tags"].hint == "JSON"
    assert fields["format"].options == (('"pdf"', "pdf"), ('"html"', "html"))
    assert fields["level"].options == (("1", "1"), ("2", "2"), ("true", "true"))


def test_a_posted_form_is_shown_again_with_its_errors() -> None:
    fields = fields_by_name(
        posted=posted(title="Q3", pages="x", format='"pdf"'), errors={"pages": "Enter a number."}
    )

    assert (fields["title"].value, fields["title"].error) == ("Q3", "")
    assert (fields["pages"].value, fields["pages"].error) == ("x", "Enter a number.")
    assert fields["format"].value == '"pdf"'
    assert fields["draft"].checked is False  # not sent: unchecked, whatever the default


def test_a_filled_form_reads_back_into_inputs_the_validator_accepts() -> None:
    form = posted(
        title="  Q3  ",
        pages="7",
        ratio="2",
        format='"pdf"',
        level="true",
        draft="true",
        tags='["x", "y"]',
        anything='{"k": [1, null]}',
    )

    inputs, errors = read_inputs(REPORT, form)

    assert errors == {}
    assert inputs == {
        "title": "  Q3  ",  # a text box may hold spaces on purpose
        "pages": 7,
        "ratio": 2,
        "format": "pdf",
        "level": True,
        "draft": True,
        "tags": ["x", "y"],
        "anything": {"k": [1, None]},
    }
    assert InputValidator(REPORT).validate(inputs)["email"] == "a@b.example"


def test_empty_optional_boxes_are_left_out_so_their_defaults_apply() -> None:
    inputs, errors = read_inputs(
        REPORT, posted(title="t", ratio="0.25", level="1", anything="null", pages=" ", tags="")
    )

    assert errors == {}
    assert inputs == {"title": "t", "ratio": 0.25, "level": 1, "anything": None, "draft": False}


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("title", "", "This input is required."),
        ("ratio", "   ", "This input is required."),
        ("pages", "2.5", "Enter a whole number."),
        ("ratio", "abc", "Enter a number."),
        ("ratio", "inf", "Enter a finite number."),
        ("level", '"1"', "Choose one of: 1, 2, true."),
        ("level", "1.0", "Choose one of: 1, 2, true."),
        ("format", "pdf", "Choose one of: pdf, html."),
        ("anything", "{", "This is not valid JSON: Expecting property name enclosed in double"),
    ],
)
def test_what_cannot_be_read_is_named_by_its_field(name: str, value: str, error: str) -> None:
    form = posted(title="t", ratio="1", level="2", anything="1") | posted(**{name: value})

    inputs, errors = read_inputs(REPORT, form)

    assert list(errors) == [name]
    assert errors[name].startswith(error)
    assert name not in inputs


def test_a_task_without_inputs_has_an_empty_form() -> None:
    schema = input_schema({})

    assert form_fields(schema) == []
    assert read_inputs(schema, {"form_token": "t", PREFIX + "stray": "1"}) == ({}, {})
