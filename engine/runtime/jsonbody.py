"""Parse a request's JSON the way the rest of engine can carry it, or say why not.

`json.loads` accepts what later stages cannot: `NaN` and `Infinity` (not JSON, and refused
by the run API and the stores), lone surrogates (`"\\ud800"`, which cannot be encoded as
UTF-8), and nesting so deep that parsing or walking it exhausts Python's stack. Each is
refused here, so that a caller answers 4xx rather than failing with a 500 later.
"""

from __future__ import annotations

import json
import re
from itertools import chain, compress
from typing import Any

__all__ = ["MAX_DEPTH", "BadJson", "loads"]

MAX_DEPTH = 64
"""The deepest nesting of lists and objects accepted; real payloads stay under 20."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_is_container = frozenset({dict, list}).__contains__  # of a type: what json makes nest


class BadJson(ValueError):
    """Raised for a body that is not JSON engine can carry; the message says why.

    `pos` is the offset of a syntax error, when there is one.
    """

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos


def _no_constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON value")


# One decoder for every call: `json.loads(raw, parse_constant=...)` builds a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads(raw: bytes | str) -> Any:
    """The JSON value in `raw`; raises BadJson (a ValueError) saying what is wrong."""
    try:
        # What json.loads does with bytes: UTF-8, -16 or -32, lone surrogates let through.
        text = (
            raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
        )
        value = _DECODER.decode(text)
    except RecursionError:
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadJson(f"not JSON: {exc}", getattr(exc, "pos", 0)) from None
    # A lone surrogate comes from a `\u` escape or from surrogate bytes let through above;
    # a text with neither (nearly every body) needs no look at its strings.
    if "\\u" in text or (not text.isascii() and _SURROGATE.search(text)):
        _check_strings(value)
    # Nesting deeper than MAX_DEPTH needs more opening brackets than that (a count at C
    # speed, true of most webhook payloads), so only bigger texts are walked.
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(value):
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Whether `value` nests lists and objects more than MAX_DEPTH levels deep.

    Walks level by level over the containers only, picking them out of each level's
    values with C-level iterators (a Python loop over every value took longer than parsing
    a webhook's payload: docs/performance.md)."""
    level = [value] if _is_container(type(value)) else []
    for _ in range(MAX_DEPTH):
        values = list(chain.from_iterable(c.values() if type(c) is dict else c for c in level))
        level = list(compress(values, map(_is_container, map(type, values))))
        if not level:
            return False
    return True


def _check_strings(value: Any) -> None:
    """Walk `value` iteratively for strings (keys too) that cannot be encoded as UTF-8."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise BadJson("a string holds a lone surrogate (an invalid \\u escape)")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
