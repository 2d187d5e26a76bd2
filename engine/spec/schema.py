"""Validate a loaded spec against the JSON Schema, with messages written for people.

jsonschema's own messages name schema keywords; these name the key, the value, what would
be right and, for unknown keys and values, the closest valid one.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from engine.errors import Diagnostic
from engine.resources import schema_path
from engine.spec.loader import Document, JsonPath, yaml_type_hint

_NAME_RULE = (
    "use 2 to 63 lower-case letters, digits and '-', starting with a letter and "
    "ending with a letter or digit (a DNS label), e.g. 'add-one-app'"
)
_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def schema() -> dict[str, Any]:
    """The spec language's JSON Schema, as shipped in `schemas/engine.schema.json`."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


# YAML reads `8080.0` as a float, which JSON Schema would accept as an integer and the model
# would then carry as a float: a whole number here means a YAML integer.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    """A validator over the schema with its `$ref`s inlined (none is recursive): the same
    verdicts, without resolving references at every node (40% faster on large specs)."""
    whole = schema()
    top = {k: v for k, v in whole.items() if k != "$defs"}
    return _Validator(_inline(top, whole.get("$defs", {})))


_INTERPOLATION = {"$ref": "#/$defs/interpolation"}
"""The alternative that lets an editor accept `port: ${PORT:-8080}`. Engine validates after
interpolating (the value is then the number), so its validator leaves it out, and a value
that is still text where a number belongs gets the number's error message."""


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        node = _without_interpolation(node)
        if "$ref" in node:
            target = _inline(defs[node["$ref"].removeprefix("#/$defs/")], defs)
            siblings = {k: _inline(v, defs) for k, v in node.items() if k != "$ref"}
            # Beside a `$ref` stand only annotations (the key's own description, examples);
            # the definition stays a schema of its own, whose words explain its errors.
            return {"allOf": [target], **siblings} if siblings else target
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, defs) for value in node]
    return node


def _without_interpolation(node: dict[str, Any]) -> dict[str, Any]:
    """`node` without the interpolation alternative (an `anyOf` of one more is unwrapped)."""
    for keyword in ("anyOf", "oneOf"):
        branches = node.get(keyword)
        if not isinstance(branches, list) or _INTERPOLATION not in branches:
            continue
        kept = [b for b in branches if b != _INTERPOLATION]
        node = {k: v for k, v in node.items() if k != keyword}
        if keyword == "anyOf" and len(kept) == 1:
            node = {**kept[0], **node}
        else:
            node[keyword] = kept
    return node


def schema_errors(doc: Document) -> list[Diagnostic]:
    """Every schema violation in `doc`, one positioned diagnostic each."""
    found: dict[tuple, Diagnostic] = {}
    for error in _validator().iter_errors(doc.data):
        for diagnostic in _explain(doc, error):
            found.setdefault((diagnostic.line, diagnostic.col, diagnostic.message), diagnostic)
    return sorted(found.values())


def _explain(doc: Document, error: ValidationError) -> list[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    keyword = error.validator
    if "propertyNames" in error.absolute_schema_path:
        path = (*path, error.instance)
        message = f"{error.instance!r} is not a valid name: {_pattern_advice(error)}"
        return [doc.diagnostic(path, message, key=True)]
    if keyword == "additionalProperties":
        return _unknown_keys(doc, error, path)
    if keyword in ("oneOf", "anyOf"):
        return _alternatives(doc, error, path)
    return [doc.diagnostic(path, _message(doc, error, path))]


def _unknown_keys(doc: Document, error: ValidationError, path: JsonPath) -> list[Diagnostic]:
    known = list(error.schema.get("properties", {}))
    result = []
    for key in error.instance:
        if key in known or key.startswith("x-"):
            continue
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif known:
            message += f"; expected one of: {', '.join(known)}"
        result.append(doc.diagnostic((*path, key), message, key=True))
    return result


def _alternatives(doc: Document, error: ValidationError, path: JsonPath) -> list[Diagnostic]:
    """oneOf/anyOf: say which of the exclusive keys is meant, or the best branch's problem."""
    branches = error.schema[error.validator]
    # Each branch only requires its key (its `properties: {key: true}` is for Ajv strict).
    exclusive = [b["required"][0] for b in branches if set(b) - {"properties"} == {"required"}]
    if len(exclusive) == len(branches) and isinstance(error.instance, dict):
        present = [k for k in exclusive if k in error.instance]
        choices = ", ".join(exclusive)
        if not present:
            message = f"needs one of: {choices}"
        else:
            message = f"has {' and '.join(present)}; give exactly one of: {choices}"
        return [doc.diagnostic(path, message)]
    misspelt = _misspelt_name(error)
    if misspelt is not None:
        return _explain(doc, misspelt)
    if all(_is_type_mismatch(e) for e in error.context):
        return [doc.diagnostic(path, _expected_one_of(doc, error, path))]
    return _explain(doc, _closest_branch_error(error))


def _misspelt_name(error: ValidationError) -> ValidationError | None:
    """A string that only the name alternative could be (`app_1` in depends_on): its own
    pattern error, so the message says what a name looks like."""
    fitting = [e for e in error.context if e.validator != "type"]
    branches = {e.relative_schema_path[0] for e in fitting}
    name = schema()["$defs"]["name"]["pattern"]
    names_only = all(e.validator == "pattern" and e.validator_value == name for e in fitting)
    if isinstance(error.instance, str) and len(branches) == 1 and names_only:
        return fitting[0]
    return None


def _closest_branch_error(error: ValidationError) -> ValidationError:
    """The deepest problem in the alternative the value was evidently meant to be.

    `auth: {bearer: 1}` is the bearer form with a bad value, not a misspelt 'none': prefer
    the branch whose type fits and whose required keys are present.
    """
    branches = error.schema[error.validator]
    errors_of: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        errors_of.setdefault(sub.relative_schema_path[0], []).append(sub)

    def fit(index: int) -> tuple[int, int]:
        branch, value = branches[index], error.instance
        score = 2 if _fits_type(value, branch.get("type")) else 0
        required = branch.get("required", [])
        if isinstance(value, dict) and required and all(k in value for k in required):
            score += 2
        return score, -len(errors_of[index])

    chosen = errors_of[max(errors_of, key=fit)]
    return max(chosen, key=lambda e: len(e.absolute_path))


def _fits_type(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return any(checks.get(k, lambda v: False)(value) for k in kinds)


def _is_type_mismatch(error: ValidationError) -> bool:
    if error.validator in ("oneOf", "anyOf") and not error.path:
        return all(_is_type_mismatch(e) for e in error.context)
    return error.validator in ("type", "const", "enum", "pattern") and not error.path


def _expected_one_of(doc: Document, error: ValidationError, path: JsonPath) -> str:
    """Explain a value that fits none of the alternatives, in the schema's own words."""
    hint = yaml_type_hint(doc, path, error.instance)
    description = _first_sentence(error.schema.get("description", ""))
    text = f"{_show(error.instance)} is not valid here"
    if description:
        text += f"; expected {description[0].lower()}{description[1:]}"
    examples = error.schema.get("examples")
    if examples:
        text += " (e.g. " + ", ".join(_show(e) for e in examples[:3]) + ")"
    return text + hint


def _message(doc: Document, error: ValidationError, path: JsonPath) -> str:
    keyword, value, rule = error.validator, error.instance, error.validator_value
    if keyword == "required":
        missing = [k for k in rule if k not in value]
        return f"missing required key {missing[0]!r}" if missing else error.message
    if keyword == "type":
        kinds = rule if isinstance(rule, list) else [rule]
        expected = " or ".join(_TYPE_NAMES.get(k, str(k)) for k in kinds)
        return f"expected {expected}, got {_show(value)}{_type_hint(doc, path, value, kinds)}"
    if keyword == "enum":
        message = f"{_show(value)} is not one of: {', '.join(map(str, rule))}"
        close = difflib.get_close_matches(str(value), [str(r) for r in rule], n=1)
        return message + (f"; did you mean {close[0]!r}?" if close else "")
    if keyword == "const":
        return f"{_show(value)} is not allowed here; the only value is {rule!r}"
    if keyword == "pattern":
        return f"{_show(value)} is not valid: {_pattern_advice(error)}"
    if keyword == "propertyNames":
        return f"{_show(value)} is not a valid name: {_pattern_advice(error)}"
    if keyword in ("minimum", "exclusiveMinimum"):
        return f"{_show(value)} is too small; the least allowed is {rule}"
    if keyword in ("maximum", "exclusiveMaximum"):
        return f"{_show(value)} is too large; the most allowed is {rule}"
    if keyword == "maxLength":
        return f"is {len(value)} characters long; at most {rule} are allowed"
    if keyword in ("minLength", "minItems"):
        return "must not be empty"
    if keyword == "uniqueItems":
        return "lists the same entry twice; remove the repeat"
    if keyword == "not":
        return _not_message(error)
    return error.message


def _type_hint(doc: Document, path: JsonPath, value: Any, kinds: list[str]) -> str:
    """Why YAML read the value as it did; quoting is advice only where text is wanted."""
    if "string" in kinds:
        return yaml_type_hint(doc, path, value)
    scalar = doc.scalars.get(path)
    if scalar is None or scalar.quoted:
        return ""
    if value is None and not scalar.text:
        return " (nothing is written after the key)"
    if isinstance(value, bool) and scalar.text.lower() not in ("true", "false"):
        return f" (YAML 1.1 reads {scalar.text} as the boolean {str(value).lower()})"
    return ""


def _pattern_advice(error: ValidationError) -> str:
    """Say in words what the pattern asks for, using the schema's description if it has one."""
    description = error.schema.get("description") or ""
    if error.validator_value == "^/":
        return "a path must start with '/'"
    if "name" in description.lower() and "DNS" in description:
        return _name_rule(error.instance)
    if ":" in str(error.validator_value) and "module" in description.lower():
        return "write module:function, e.g. handlers:add_one"
    first_sentence = _first_sentence(description)
    if not first_sentence:
        return f"must match {error.validator_value}"
    return first_sentence[0].lower() + first_sentence[1:]


def _first_sentence(text: str) -> str:
    """The first sentence (or clause before a semicolon) of a schema description."""
    return text.split(". ")[0].split("; ")[0].rstrip(".")


def _name_rule(value: Any) -> str:
    """The naming rule, saying first when the name is simply too long to count."""
    if isinstance(value, str) and len(value) > 63:
        return f"it is {len(value)} characters long; {_NAME_RULE}"
    return _NAME_RULE


def _not_message(error: ValidationError) -> str:
    required = (
        error.validator_value.get("required") if isinstance(error.validator_value, dict) else None
    )
    if required and len(required) > 1:
        return f"give either {required[0]!r} or {required[1]!r}, not both"
    if required:
        return f"{required[0]!r} is not allowed here; remove it"
    return error.message


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
