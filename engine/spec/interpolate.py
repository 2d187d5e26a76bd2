"""Load-time `${VAR}` and `${VAR:-default}` from the applying user's environment.

Request-time expressions (`${{ ... }}`) are a different thing and pass through untouched;
`$${` writes a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.errors import Diagnostic
from engine.spec.loader import Document, JsonPath, Scalar

_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(doc: Document, environ: Mapping[str, str]) -> list[Diagnostic]:
    """Replace `${VAR}` in every string value of `doc.data` in place; return what is missing."""
    errors: list[Diagnostic] = []
    doc.data = _walk(doc, doc.data, (), environ, errors)
    return errors


def _walk(
    doc: Document, value: Any, path: JsonPath, environ: Mapping[str, str], errors: list
) -> Any:
    if isinstance(value, dict):
        return {k: _walk(doc, v, (*path, k), environ, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(doc, v, (*path, i), environ, errors) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        result = _substitute(doc, value, path, environ, errors)
        return _typed(doc, path, value, result)
    return value


def _typed(doc: Document, path: JsonPath, written: str, result: str) -> Any:
    """`port: ${PORT:-8080}` is the number 8080, as if the value had been written there.

    Only an unquoted value that is one whole `${...}` becomes a number; booleans stay
    text (no YAML 1.1 surprises), and so does everything else.
    """
    scalar = doc.scalars.get(path)
    if scalar is None or scalar.quoted or not _VARIABLE.fullmatch(written):
        return result
    doc.scalars[path] = Scalar(result, quoted=False)
    for kind in (int, float):
        try:
            return kind(result)
        except ValueError:
            continue
    return result


def _substitute(
    doc: Document, text: str, path: JsonPath, environ: Mapping[str, str], errors: list
) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, default = match[1], match[2]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        errors.append(
            doc.diagnostic(
                path,
                f"environment variable {name} is not set; set it before running engine, "
                f"or give a default: ${{{name}:-value}}",
            )
        )
        return ""

    return _VARIABLE.sub(replace, text)
