"""Parse a request's JSON the way the rest of engine can carry it, or say why not.

`json.loads` accepts what later stages cannot: `NaN` and `Infinity` (not JSON, and refused
by the run API and the stores), lone surrogates (`"\\ud800"`, which cannot be encoded as
UTF-8), and nesting so deep that parsing or walking it exhausts Python's stack. Each is
refused here, so that a caller answers 4xx rather than failing with a 500 later.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "BadJson", "loads"]

MAX_DEPTH = 64
"""The deepest nesting of lists and objects accepted; real payloads stay under 20."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJson(ValueError):
    """Raised for a body that is not JSON engine can carry; the message says why.

    `pos` is the offset of a syntax error, when there is one.
    """

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos


def _no_constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON value")


def loads(raw: bytes | str) -> Any:
    """The JSON value in `raw`; raises BadJson (a ValueError) saying what is wrong."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadJson(f"not JSON: {exc}", getattr(exc, "pos", 0)) from None
    _check(value)
    return value


def _check(value: Any) -> None:
    """Walk `value` iteratively: depth, and strings that cannot be encoded."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise BadJson("a string holds a lone surrogate (an invalid \\u escape)")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)
