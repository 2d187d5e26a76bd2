"""The runtime library that generated apps and user handlers import.

Kept light on purpose (no FastAPI here): user code calls `endpoint()` and `secret()` from
handlers and tasks, and `import engine.runtime` must stay cheap. The app-building API lives
in `engine.runtime.app`.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import EngineError

__all__ = ["ConfigError", "endpoint", "env_name", "secret"]


class ConfigError(EngineError):
    """Raised when a process lacks an environment variable (or file) it was promised."""


def env_name(name: str) -> str:
    """The variable spelling of an app or secret name: `github-secret` -> `GITHUB_SECRET`."""
    return name.upper().replace("-", "_")


def endpoint(name: str) -> str:
    """The base URL of app `name` (from `<NAME>_ENDPOINT`), e.g. `http://127.0.0.1:8001`."""
    var = f"{env_name(name)}_ENDPOINT"
    value = os.environ.get(var)
    if not value:
        raise ConfigError(
            f"{var} is not set: add {name!r} to this app's or task's depends_on to call it"
        )
    return value.rstrip("/")


def secret(name_or_var: str) -> str:
    """The value of a granted secret, from its variable or from the file named by `<VAR>_FILE`.

    Accepts the secret's name (`github-secret`) or its variable (`GITHUB_SECRET`). One
    trailing newline of a file is dropped (editors add one).
    """
    var = env_name(name_or_var)
    value = os.environ.get(var)
    if value is not None:
        return value
    path = os.environ.get(f"{var}_FILE")
    if path is None:
        raise ConfigError(f"secret {var} is not set (neither {var} nor {var}_FILE)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"secret file of {var} ({var}_FILE) cannot be read: {exc.strerror}"
        ) from exc
    return text[:-1] if text.endswith("\n") else text
