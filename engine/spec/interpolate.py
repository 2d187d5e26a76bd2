"""Load-time `${VAR}` and `${VAR:-default}` from the applying user's environment.

Request-time expressions (`${{ ... }}`) are a different thing and pass through untouched;
`$${` writes a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.errors import Diagnostic
from engine.spec.loader import Document, JsonPath

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
        return _substitute(doc, value, path, environ, errors)
    return value


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
