"""Python source for validated values: the only way spec data reaches generated code.

Scalars go through `repr()`; containers are laid out the way `ruff format` would, so the
output needs no formatter and is byte-identical for the same input.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any

WIDTH = 100


class Code(str):
    """Source text computed by the compiler (a name), printed as-is."""


@dataclass(frozen=True)
class Construct:
    """A call `name(key=value, ...)` written by the compiler, laid out like a literal."""

    name: str
    arguments: tuple[tuple[str, Any], ...]


_SPLITTABLE = (dict, list, tuple, Construct)


def literal(value: Any, indent: int = 0, prefix: int = 0) -> str:
    """Python source for `value` on a line indented by `indent` after `prefix` characters.

    It stays on one line when that fits in WIDTH columns, and is otherwise laid out one
    item per line with a trailing comma.
    """
    flat = _flat(value)
    if indent + prefix + _width(flat) < WIDTH or not isinstance(value, _SPLITTABLE):
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, Construct):
        # As ruff does for a call: all arguments on one line of their own if they fit there.
        args = ", ".join(f"{k}={_flat(v)}" for k, v in value.arguments)
        if indent + 4 + _width(args) <= WIDTH:
            return f"{value.name}(\n{inner}{args}\n{' ' * indent})"
        items = [f"{k}=" + literal(v, indent + 4, len(k) + 1) for k, v in value.arguments]
        open_, close = f"{value.name}(", ")"
    elif isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{_flat(key)}: "
            items.append(head + literal(item, indent + 4, _width(head)))
        open_, close = "{", "}"
    else:
        items = [literal(v, indent + 4) for v in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    body = "".join(f"{inner}{item},\n" for item in items)
    return f"{open_}\n{body}{' ' * indent}{close}"


def _width(text: str) -> int:
    """Columns `text` takes, as ruff counts them: wide characters (emoji, CJK) take two."""
    if text.isascii():
        return len(text)
    return sum(
        2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
        for c in text
    )


def _flat(value: Any) -> str:
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, Construct):
        return f"{value.name}(" + ", ".join(f"{k}={_flat(v)}" for k, v in value.arguments) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_flat(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} into generated code")


def _string(text: str) -> str:
    """`repr(text)`'s escapes inside the quotes `ruff format` picks: double ones, unless the
    text holds more double quotes than single ones."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + "".join(_char(c, quote) for c in text) + quote


def _char(c: str, quote: str) -> str:
    return "\\" + c if c in (quote, "\\") else repr(c)[1:-1]
