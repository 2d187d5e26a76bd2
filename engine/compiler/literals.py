"""Python source for validated values: the only way spec data reaches generated code.

Scalars go through `repr()`; containers are laid out the way `ruff format` would, so the
output needs no formatter and is byte-identical for the same input.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

WIDTH = 100


class Code(str):
    """Source text computed by the compiler (a name), printed as-is."""


@dataclass(frozen=True)
class Construct:
    """A call `name(value, key=value, ...)` written by the compiler, laid out like a literal;
    an argument whose key is None is positional."""

    name: str
    arguments: tuple[tuple[str | None, Any], ...]


@dataclass(frozen=True)
class Subscript:
    """A subscripted type `name[item, ...]`, e.g. `Annotated[int, Query(ge=0)]`."""

    name: str
    items: tuple[Any, ...]


_SPLITTABLE = (dict, list, tuple, Construct, Subscript)


def _argument(key: str | None, value: Any) -> str:
    return _flat(value) if key is None else f"{key}={_flat(value)}"


def literal(value: Any, indent: int = 0, prefix: int = 0, tail: int = 1) -> str:
    """Python source for `value` on a line indented by `indent` after `prefix` characters
    and before `tail` more (by default a comma).

    It stays on one line when that fits in WIDTH columns, and is otherwise laid out one
    item per line with a trailing comma.
    """
    flat = _flat(value)
    if indent + prefix + width(flat) + tail <= WIDTH or not isinstance(value, _SPLITTABLE):
        return flat
    if isinstance(value, Construct | Subscript):
        call = isinstance(value, Construct)
        pairs = (
            value.arguments if isinstance(value, Construct) else [(None, v) for v in value.items]
        )
        return bracketed(
            f"{value.name}(" if call else f"{value.name}[", pairs, ")" if call else "]", indent
        )
    inner = " " * (indent + 4)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{_flat(key)}: "
            items.append(head + literal(item, indent + 4, width(head)))
        open_, close = "{", "}"
    else:
        items = [literal(v, indent + 4) for v in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    body = "".join(f"{inner}{item},\n" for item in items)
    return f"{open_}\n{body}{' ' * indent}{close}"


def bracketed(open_: str, pairs: Any, close: str, indent: int) -> str:
    """Arguments `pairs` ((key or None, value), ...) between `open_` and `close`, split as
    ruff splits a call or a def: all on one line of their own if they fit there, else one
    per line with a trailing comma."""
    inner = " " * (indent + 4)
    args = ", ".join(_argument(k, v) for k, v in pairs)
    if indent + 4 + width(args) <= WIDTH:
        return f"{open_}\n{inner}{args}\n{' ' * indent}{close}"
    items = [
        literal(v, indent + 4) if k is None else f"{k}=" + _keyword_value(v, indent + 4, len(k) + 1)
        for k, v in pairs
    ]
    body = "".join(f"{inner}{item},\n" for item in items)
    return f"{open_}\n{body}{' ' * indent}{close}"


def _keyword_value(value: Any, indent: int, prefix: int) -> str:
    """A keyword argument's value; a string too long for the line is split at spaces into
    an implicit concatenation, one part per line, which `ruff format` keeps as it is."""
    flat = literal(value, indent, prefix)
    if not isinstance(value, str) or indent + prefix + width(flat) + 1 <= WIDTH:
        return flat
    parts: list[str] = []
    room = WIDTH - indent - prefix
    for word in re.findall(r"\S*\s*", value)[:-1] or [value]:
        if parts and width(_string(parts[-1] + word)) <= room:
            parts[-1] += word
        else:
            if parts:
                room = WIDTH - indent - 1  # continuation lines end with the comma only
            parts.append(word)
    if len(parts) == 1:
        return flat
    return f"\n{' ' * indent}".join(_string(part) for part in parts)


def width(text: str) -> int:
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
        return f"{value.name}(" + ", ".join(_argument(k, v) for k, v in value.arguments) + ")"
    if isinstance(value, Subscript):
        return f"{value.name}[" + ", ".join(_flat(v) for v in value.items) + "]"
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
    if text.isascii() and text.isprintable() and quote not in text and "\\" not in text:
        return quote + text + quote  # nothing to escape: most names, paths and texts
    return quote + "".join(_char(c, quote) for c in text) + quote


def _char(c: str, quote: str) -> str:
    return "\\" + c if c in (quote, "\\") else repr(c)[1:-1]
