"""Checking a blueprint's parameters and rendering its templates.

Templates use Jinja2's usual `{{ }}` and `{% %}` in a sandbox, with StrictUndefined and no
autoescaping. The spec's own request-time expressions, `${{ ... }}`, pass through
untouched: before rendering, each `${{` is swapped for a private character that Jinja does
not treat specially, and swapped back after; the `}}` that closes it is plain text to
Jinja, because Jinja only looks for `}}` after a `{{`. So `${{ body.{{ field }} }}` renders
a parameter inside an expression.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import jsonschema

from engine.blueprints.catalog import FILES, TEMPLATE, Blueprint
from engine.errors import Diagnostic, SpecError

EXPRESSION_OPEN = "${{"
_PLACEHOLDER = "\ue000"  # Unicode private use: never in a real template (refused if it is)


@dataclass(frozen=True)
class Problem:
    """A parameter that fails the blueprint's schema; `path` is inside the parameters."""

    path: tuple[str | int, ...]
    message: str
    key: bool = False


def check_parameters(
    blueprint: Blueprint, values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """The parameters with defaults filled in, and every problem with `values`."""
    problems = [
        Problem((name,), _unknown(blueprint, name), key=True)
        for name in values
        if name not in blueprint.properties
    ]
    schema = {**blueprint.parameters, "additionalProperties": True}
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(dict(values)), key=lambda e: list(e.path)):
        problems.append(Problem(tuple(error.absolute_path), _message(blueprint, error)))
    filled = {
        name: prop["default"]
        for name, prop in blueprint.properties.items()
        if "default" in prop and name not in values
    }
    filled.update(values)
    return filled, problems


def _unknown(blueprint: Blueprint, name: str) -> str:
    known = sorted(blueprint.properties)
    message = f"blueprint {blueprint.name!r} has no parameter {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; its parameters: {', '.join(known) or 'none'}"


def _message(blueprint: Blueprint, error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        name = str(error.message).split("'")[1] if "'" in error.message else error.message
        described = blueprint.properties.get(name, {}).get("description", "")
        hint = f" ({described})" if described else ""
        return f"blueprint {blueprint.name!r} needs the parameter {name!r}{hint}"
    return error.message


def environment(blueprint: Blueprint) -> jinja2.Environment:
    """A sandboxed, strict Jinja2 environment loading templates from the blueprint's folder."""
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FunctionLoader(lambda name: _load(blueprint.path, name)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _load(root: Path, name: str) -> tuple[str, str, None] | None:
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        return None
    path = root.joinpath(*parts)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if _PLACEHOLDER in text:
        line = text[: text.index(_PLACEHOLDER)].count("\n") + 1
        message = "the character U+E000 cannot appear in a blueprint template; remove it"
        raise SpecError([Diagnostic(str(path), line, 1, "$", message)])
    return text.replace(EXPRESSION_OPEN, _PLACEHOLDER), str(path), None


def render(blueprint: Blueprint, name: str, context: Mapping[str, Any]) -> str:
    """Render the blueprint's template `name`; SpecError positioned in the template."""
    env = environment(blueprint)
    filename = str(blueprint.path / name)
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or filename
        raise SpecError(
            [_diagnostic(where, exc.lineno, f"template syntax: {exc.message}")]
        ) from exc
    except jinja2.UndefinedError as exc:
        where, line = _template_line(exc, filename)
        message = (
            f"template error: {exc.message}; declare it under `parameters` in the "
            "blueprint's blueprint.yaml (with a default if it is optional)"
        )
        raise SpecError([_diagnostic(where, line, message)]) from exc
    except jinja2.TemplateError as exc:
        where, line = _template_line(exc, filename)
        raise SpecError([_diagnostic(where, line, f"template error: {exc}")]) from exc
    return text.replace(_PLACEHOLDER, EXPRESSION_OPEN)


def render_spec(blueprint: Blueprint, context: Mapping[str, Any]) -> str:
    """The blueprint's spec fragment, as YAML text."""
    return render(blueprint, TEMPLATE, context)


def render_files(blueprint: Blueprint, context: Mapping[str, Any]) -> dict[str, bytes]:
    """The blueprint's handler files: relative path -> content (`.j2` ones rendered)."""
    root = blueprint.path / FILES
    result: dict[str, bytes] = {}
    if not root.is_dir():
        return result
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(root).as_posix()
        if path.suffix == ".j2":
            name = f"{FILES}/{relative}"
            result[relative.removesuffix(".j2")] = render(blueprint, name, context).encode()
        else:
            result[relative] = path.read_bytes()
    return result


def _diagnostic(file: str, line: int | None, message: str) -> Diagnostic:
    return Diagnostic(file, line or 1, 1, "$", message)


def _template_line(exc: BaseException, filename: str) -> tuple[str, int | None]:
    """The template file and line a render error came from, read off the traceback."""
    where, line = filename, None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code.co_filename
        if code.endswith(".j2"):
            where, line = code, tb.tb_lineno
        tb = tb.tb_next
    return where, line
