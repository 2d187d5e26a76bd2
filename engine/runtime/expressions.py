"""`${{ expr }}` expressions: Jinja2 expressions evaluated in an immutable sandbox.

Values are compiled once, when a route is declared (`compile_value`), and evaluated per
request over a context with `path`, `query`, `body`, `headers`, `event`, `delivery` and
`endpoints`.

Decisions:
* A string that is exactly one expression (surrounding blanks allowed) keeps the result's
  type; any other string with expressions becomes a string, where None and missing values
  print as "", dicts, lists and booleans as JSON, everything else with `str()`.
* A missing key (`body.nothing.deeper`) is not an error: it evaluates to None (or "" inside
  a string), as webhook payloads often lack optional fields. Calling or comparing a missing
  value still fails.
* `a.b` on a mapping means the key "b" first (`body.items` is the payload's field, not
  the dict method); other attributes as in Jinja.
* Unsafe attributes (`__class__`, `mro`, ...) raise at once instead of quietly giving an
  undefined value, so an escape attempt is reported, never executed.
* An expression may not contain `}}` (the end marker), e.g. in a nested dict literal.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import EngineError

__all__ = [
    "CONTEXT_NAMES",
    "ExpressionError",
    "check_syntax",
    "compile_inputs",
    "compile_value",
    "has_expression",
]

CONTEXT_NAMES = ("path", "query", "body", "headers", "event", "delivery", "endpoints", "run")
"""Every name an expression may use; `run` only in a run action's `respond` and `failed`."""
_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*", re.DOTALL)

Renderer = Callable[[Mapping[str, Any]], Any]


class ExpressionError(EngineError):
    """Raised when an expression has bad syntax or fails while it is evaluated."""


@functools.cache
def _sandbox() -> Any:
    """The immutable sandbox, made to fail loudly on unsafe attribute access.

    Made when the first expression is compiled, so that Jinja2 (2 MiB of an app's memory)
    is imported only where a spec has expressions (docs/performance.md).
    """
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Sandbox(ImmutableSandboxedEnvironment):
        def getattr(self, obj: Any, attribute: str) -> Any:
            # JSON data first: `body.items` is the payload's "items", not dict.items.
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

        def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
            raise SecurityError(f"access to attribute {attribute!r} is not allowed")

    return Sandbox(undefined=jinja2.ChainableUndefined, autoescape=False)


def _compile(source: str) -> Any:
    return _sandbox().compile_expression(source, undefined_to_none=False)


def _undefined(value: Any) -> bool:
    """Whether `value` is the sandbox's missing value (only expressions make one)."""
    return isinstance(value, _sandbox().undefined)


def has_expression(text: str) -> bool:
    """Whether `text` holds at least one `${{ }}` expression."""
    return "${{" in text


def check_syntax(text: str) -> str | None:
    """The syntax error of the first bad expression in `text` (with its column), or None."""
    for start, source in _expressions(text):
        if source is None:
            return f"column {start + 1}: '${{{{' is not closed by '}}}}'"
        from jinja2 import TemplateSyntaxError

        try:
            _compile(source)
        except TemplateSyntaxError as exc:
            return f"column {start + 1}: {exc.message}"
    return None


def compile_value(tree: Any) -> Renderer:
    """Compile a tree of values (dicts, lists, scalars) whose strings may hold expressions.

    Returns a function from a context mapping to the evaluated tree. Raises
    ExpressionError on a syntax error.
    """
    if isinstance(tree, str):
        return _compile_string(tree)
    if isinstance(tree, Mapping):
        items = [(key, compile_value(value)) for key, value in tree.items()]
        return lambda ctx: {key: render(ctx) for key, render in items}
    if isinstance(tree, list | tuple):
        renders = [compile_value(value) for value in tree]
        return lambda ctx: [render(ctx) for render in renders]
    return lambda ctx: tree


def compile_inputs(tree: Any) -> Renderer:
    """`compile_value` for a run's inputs: a key whose value is exactly one expression that
    yields nothing (a field the request lacks) is left out, so the task's `default` applies
    instead of a null that its schema refuses."""
    if not isinstance(tree, Mapping):
        return compile_value(tree)
    items = [(key, _compile_optional(value)) for key, value in tree.items()]

    def render(ctx: Mapping[str, Any]) -> dict[str, Any]:
        values = ((key, item(ctx)) for key, item in items)
        return {key: value for key, value in values if not _undefined(value)}

    return render


def _compile_optional(value: Any) -> Renderer:
    """Like compile_value, but a whole expression's missing value stays Undefined."""
    whole = _WHOLE.fullmatch(value) if isinstance(value, str) else None
    if whole is None or check_syntax(value):
        return compile_value(value)
    expr = _compile(whole.group(1))
    return lambda ctx: _evaluate(expr, ctx, value)


def _expressions(text: str) -> list[tuple[int, str | None]]:
    """(column offset, source) of each expression; source None for an unclosed one."""
    found = [(m.start(), m.group(1)) for m in _EXPR.finditer(text)]
    tail = text.rfind("${{")
    if tail >= 0 and "}}" not in text[tail:]:
        found.append((tail, None))
    return found


def _compile_string(text: str) -> Renderer:
    if not has_expression(text):
        return lambda ctx: text
    error = check_syntax(text)
    if error:
        raise ExpressionError(f"bad expression in {text!r}: {error}")
    whole = _WHOLE.fullmatch(text)
    if whole:
        expr = _compile(whole.group(1))
        return lambda ctx: _plain(_evaluate(expr, ctx, text))
    parts: list[str | Any] = []
    last = 0
    for match in _EXPR.finditer(text):
        parts.append(text[last : match.start()])
        parts.append(_compile(match.group(1)))
        last = match.end()
    parts.append(text[last:])
    return lambda ctx: "".join(
        part if isinstance(part, str) else _to_text(_evaluate(part, ctx, text)) for part in parts
    )


def _evaluate(expr: Any, ctx: Mapping[str, Any], text: str) -> Any:
    try:
        return expr(**ctx)
    except Exception as exc:
        from jinja2.sandbox import SecurityError  # imported already: `expr` is Jinja's

        if isinstance(exc, SecurityError):
            raise ExpressionError(f"{text!r}: {exc}") from exc
        raise ExpressionError(f"{text!r}: {type(exc).__name__}: {exc}") from exc


def _plain(value: Any) -> Any:
    return None if _undefined(value) else value


def _to_text(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple | bool):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
