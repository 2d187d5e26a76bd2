"""A task's input form in the console: built from its inputs' JSON Schema, read back into inputs.

    fields = form_fields(schema)                      # what the task page shows
    inputs, errors = read_inputs(schema, posted)      # posted: {"input.x": "41", ...}

Each input becomes the control a person expects for its schema: `string` a text box
(`email`, `uri` and `date` formats their own kinds), `integer` and `number` a number box
with the schema's `minimum`/`maximum`, `boolean` a checkbox, `enum` a list to choose from;
anything else (objects, arrays, several types, `anyOf`...) a text area taking JSON. Defaults
are filled in, inputs without one are marked required. `read_inputs` converts what was
posted back by the same rules and names the field of each problem; the runner's schema
check (the one the run API uses) still has the last word.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["PREFIX", "FormField", "form_fields", "read_inputs"]

PREFIX = "input."
"""Form field names are the inputs' names after this, so none clashes with `form_token`."""

Widget = Literal["text", "number", "checkbox", "select", "json"]

_FORMATS = {"email": "email", "uri": "url", "date": "date"}
"""String formats whose browser input checks the same thing as the schema's format."""

_NOT_AN_OPTION = object()
"""What a posted choice that is not JSON stands for: equal to no option."""


@dataclass(frozen=True)
class FormField:
    """One input of a task as a form control."""

    name: str
    widget: Widget
    required: bool
    value: str = ""
    """The text shown in the control: what was posted, else the default."""
    checked: bool = False
    input_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()
    """(value, label) pairs of a `select`; each value is the option's JSON."""
    attrs: Mapping[str, str] = field(default_factory=dict)
    """min, max, step, minlength, maxlength, placeholder."""
    hint: str = ""
    error: str = ""

    @property
    def form_name(self) -> str:
        return PREFIX + self.name


def form_fields(
    schema: Mapping[str, Any],
    posted: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[FormField]:
    """The form of a task whose inputs' JSON Schema object is `schema`, in its order.

    With `posted` (a form sent back), the controls show what the person entered, and
    `errors` (input name -> message) next to the inputs they are about.
    """
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    errors = errors or {}
    fields = []
    for name, prop in properties.items():
        shape = prop if isinstance(prop, Mapping) else {}
        made = _field(name, shape, name in required, posted)
        fields.append(replace(made, error=errors.get(name, "")))
    return fields


def read_inputs(
    schema: Mapping[str, Any], posted: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The inputs a posted form gives, and what is wrong with it (input name -> message).

    An empty box is left out (the input's default then applies); a required one left
    empty is an error here already. Checkboxes not sent are false.
    """
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, prop in properties.items():
        prop = prop if isinstance(prop, Mapping) else {}
        widget = _widget(prop)
        text = posted.get(PREFIX + name, "")
        if widget == "checkbox":
            inputs[name] = text != ""
            continue
        # A text input may hold spaces on purpose; a number or JSON of spaces is empty.
        if text == "" or (widget != "text" and text.strip() == ""):
            if name in required:
                errors[name] = "This input is required."
            continue
        try:
            inputs[name] = _convert(widget, prop, text)
        except ValueError as exc:
            errors[name] = str(exc)
    return inputs, errors


def _field(
    name: str, prop: Mapping[str, Any], required: bool, posted: Mapping[str, str] | None
) -> FormField:
    widget = _widget(prop)
    hint = str(prop.get("description") or prop.get("title") or "")
    sent = None if posted is None else posted.get(PREFIX + name, "")
    default = prop.get("default")
    has_default = "default" in prop
    if widget == "checkbox":
        checked = sent != "" if sent is not None else default is True
        return FormField(name, widget, False, checked=checked, hint=hint)
    if widget == "select":
        options = tuple((json.dumps(v), _label(v)) for v in prop["enum"])
        chosen = sent if sent is not None else (json.dumps(default) if has_default else "")
        return FormField(name, widget, required, chosen, options=options, hint=hint)
    if sent is not None:
        value = sent
    elif not has_default:
        value = ""
    elif widget == "json":
        value = json.dumps(default, indent=2, ensure_ascii=False)
    else:
        value = _label(default)
    attrs = _attrs(widget, prop)
    input_type = "number" if widget == "number" else _FORMATS.get(str(prop.get("format")), "text")
    hint = hint or ("JSON" if widget == "json" else "")
    return FormField(name, widget, required, value, input_type=input_type, attrs=attrs, hint=hint)


def _widget(prop: Mapping[str, Any]) -> Widget:
    """Which control fits an input's schema."""
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return "select"
    kind = prop.get("type")
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "checkbox"
    if kind == "string":
        return "text"
    return "json"  # objects, arrays, several types or none: the person writes JSON


def _attrs(widget: Widget, prop: Mapping[str, Any]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if widget == "number":
        attrs["step"] = "1" if prop.get("type") == "integer" else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if _is_number(prop.get(key)):
                attrs[attr] = _label(prop[key])
    if widget == "text":
        for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(prop.get(key), int) and not isinstance(prop[key], bool):
                attrs[attr] = str(prop[key])
    examples = prop.get("examples")
    if widget in ("text", "number") and isinstance(examples, list) and examples:
        attrs["placeholder"] = f"e.g. {_label(examples[0])}"
    return attrs


def _convert(widget: Widget, prop: Mapping[str, Any], text: str) -> Any:
    """The JSON value `text` stands for in this control; ValueError says what is wrong."""
    if widget == "text":
        return text
    if widget == "select":
        options = prop["enum"]
        try:
            value = json.loads(text)
        except ValueError:
            value = _NOT_AN_OPTION
        # By type too: in Python `True == 1`, in the schema they are different values.
        if not any(type(value) is type(o) and value == o for o in options):
            raise ValueError("Choose one of: " + ", ".join(_label(o) for o in options) + ".")
        return value
    if widget == "number":
        return _number(text.strip(), integer=prop.get("type") == "integer")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"This is not valid JSON: {exc}.") from None


def _number(text: str, *, integer: bool) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    if integer:
        raise ValueError("Enter a whole number.")
    try:
        value = float(text)
    except ValueError:
        raise ValueError("Enter a number.") from None
    if not math.isfinite(value):
        raise ValueError("Enter a finite number.")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(value: object) -> str:
    """How a schema value reads in a control: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
