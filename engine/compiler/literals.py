"""Python source for validated values: the only way spec data reaches generated code.

Scalars go through `repr()`; containers are laid out the way `ruff format` would, so the
output needs no formatter and is byte-identical for the same input.
"""

from __future__ import annotations

import math
from typing import Any

WIDTH = 100


class Code(str):
    """Source text computed by the compiler (a call or a name), printed as-is."""


def literal(value: Any, indent: int = 0, prefix: int = 0) -> str:
    """Python source for `value` on a line indented by `indent` after `prefix` characters.

    It stays on one line when that fits in WIDTH columns, and is otherwise laid out one
    item per line with a trailing comma.
    """
    flat = _flat(value)
    if indent + prefix + len(flat) < WIDTH or not isinstance(value, dict | list | tuple):
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{_flat(key)}: "
            items.append(head + literal(item, indent + 4, len(head) + 1))
        open_, close = "{", "}"
    else:
        items = [literal(v, indent + 4, 1) for v in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    body = "".join(f"{inner}{item},\n" for item in items)
    return f"{open_}\n{body}{' ' * indent}{close}"


def _flat(value: Any) -> str:
    if isinstance(value, Code):
        return str(value)
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
    """`repr(text)`, double-quoted where that needs no escapes (as `ruff format` prefers)."""
    source = repr(text)
    if source.startswith("'") and '"' not in text:
        return f'"{source[1:-1]}"'
    return source
