"""The runtime library that generated apps and user handlers import.

Kept light on purpose (no FastAPI here): user code calls `endpoint()` and `secret()` from
handlers and tasks, and `import engine.runtime` must stay cheap. The app-building API lives
in `engine.runtime.app`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError

if TYPE_CHECKING:  # httpx is imported by client() only, so that this module stays light
    import httpx

__all__ = ["ConfigError", "client", "endpoint", "env_name", "secret"]


class ConfigError(EngineError):
    """Raised when a process lacks an environment variable (or file) it was promised."""


def env_name(name: str) -> str:
    """The variable spelling of an app or secret name: `github-secret` -> `GITHUB_SECRET`."""
    return name.upper().replace("-", "_")


def endpoint(name: str) -> str:
    """The base URL of app `name`, e.g. `http://127.0.0.1:8001`, whichever variable the
    spec's `depends_on` gives it (`ENGINE_ENDPOINTS` lists them all by app name)."""
    try:
        known = json.loads(os.environ.get("ENGINE_ENDPOINTS") or "{}")
    except ValueError:
        known = {}
    value = known.get(name) if isinstance(known, dict) else None
    var = f"{env_name(name)}_ENDPOINT"
    value = value or os.environ.get(var)
    if not value:
        raise ConfigError(
            f"{var} is not set: add {name!r} to this app's or task's depends_on to call it"
        )
    return str(value).rstrip("/")


def client(name: str, **options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for app `name`: its base URL, timeouts (60 s, 5 s to connect)
    and, if that app lets this app or task call it (`auth.apps`, `auth.tasks`), the
    credentials for the pair.

        async with engine.runtime.client("backend") as backend:
            items = (await backend.get("/items")).json()

    `options` go to `httpx.AsyncClient` (e.g. `timeout=`); headers given there are added.
    """
    import httpx

    from engine.runtime.credentials import credential_headers

    headers = {**credential_headers(name), **options.pop("headers", {})}
    options.setdefault("timeout", httpx.Timeout(60.0, connect=5.0))
    return httpx.AsyncClient(base_url=endpoint(name), headers=headers, **options)


SECRETS_VARIABLE = "ENGINE_SECRETS"
"""JSON object: secret name -> the variable each secret granted to this process is in."""


def secret(name_or_var: str) -> str:
    """The value of a granted secret, from its variable or from the file named by `<VAR>_FILE`.

    Accepts the secret's name (`github-secret`) or its variable (`GITHUB_SECRET`, or the
    one its grant names: `{name: db-password, env: PGPASSWORD}`). One trailing newline of
    a file is dropped (editors add one).
    """
    granted = _granted()
    if name_or_var in granted:
        var = granted[name_or_var]
    elif name_or_var in granted.values():
        var = name_or_var
    else:
        var = env_name(name_or_var)
    value = os.environ.get(var)
    if value is not None:
        return value
    path = os.environ.get(f"{var}_FILE")
    if path is None:
        raise ConfigError(_missing(name_or_var, var, granted))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"secret file of {var} ({var}_FILE) cannot be read: {exc.strerror}"
        ) from exc
    return text[:-1] if text.endswith("\n") else text


def _granted() -> dict[str, str]:
    try:
        granted = json.loads(os.environ.get(SECRETS_VARIABLE) or "{}")
    except ValueError:
        return {}
    return granted if isinstance(granted, dict) else {}


def _missing(name_or_var: str, var: str, granted: dict[str, str]) -> str:
    """Why a secret cannot be read, in the spec's words: its grant's variable, or the
    grant that is missing."""
    if (
        name_or_var in granted
        or name_or_var in granted.values()
        or SECRETS_VARIABLE not in os.environ
    ):
        return f"secret {var} is not set (neither {var} nor {var}_FILE)"
    owner = os.environ.get("ENGINE_APP") or os.environ.get("ENGINE_TASK")
    kind = "app" if "ENGINE_APP" in os.environ else "task"
    who = f"{kind} {owner!r}" if owner else "this process"
    seen = ", ".join(f"{name} (as {variable})" for name, variable in sorted(granted.items()))
    return (
        f"secret {name_or_var!r} is not granted to {who}: add it under its `secrets:` in the "
        f"spec" + (f"; it is granted {seen}" if seen else "")
    )
