"""Route, webhook and WebSocket authentication: a bearer token or an API key header.

`Bearer` and `ApiKey` are plain declarations; `resolve()` reads the secret once, when the
route is declared (that is, when the app starts), so a missing secret stops the app with a
message naming its variable instead of failing every request.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from engine.runtime import secret
from engine.runtime.credentials import mint

__all__ = ["ApiKey", "Bearer", "Denied", "Guard", "resolve"]


@dataclass(frozen=True)
class Bearer:
    """`Authorization: Bearer <token>`, the token being the secret in `secret_env` (or the
    credential minted for one of `apps` or `tasks`, the project's callers allowed)."""

    secret_env: str
    apps: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiKey:
    """A key in header `header`, equal to the secret in `secret_env` (or the credential
    minted for one of `apps` or `tasks`)."""

    header: str
    secret_env: str
    apps: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()


Auth = Bearer | ApiKey | None


@dataclass(frozen=True)
class Denied:
    """Why a request was refused: the HTTP status, a short detail and extra headers."""

    status: int
    detail: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Guard:
    """An auth declaration with its secret read: checks request headers."""

    auth: Auth
    expected: tuple[bytes, ...] = ()

    def check(self, headers: Mapping[str, str]) -> Denied | None:
        """None if `headers` carry the right credentials, else why not (401 or 403)."""
        if self.auth is None:
            return None
        given = _credential(self.auth, headers)
        if given is None:
            return _missing(self.auth)
        # Every candidate is compared, so the time taken does not tell which one was close.
        matches = [hmac.compare_digest(given.encode(), e) for e in self.expected]
        return None if any(matches) else Denied(403, "Invalid credentials", {})


def resolve(auth: Auth, project: str = "", app: str = "") -> Guard:
    """Read the secret of `auth` now; raises ConfigError naming the variable if it is absent.

    With `auth.apps` and `auth.tasks`, the credentials minted for each caller of `app` (in
    `project`) are accepted too.
    """
    if auth is None:
        return Guard(None)
    key = secret(auth.secret_env)
    minted = [mint(key, project, app, caller) for caller in auth.apps] if key else []
    minted += [mint(key, project, app, t, "task") for t in auth.tasks] if key else []
    return Guard(auth, tuple(v.encode() for v in [key, *minted]))


def _credential(auth: Bearer | ApiKey, headers: Mapping[str, str]) -> str | None:
    if isinstance(auth, ApiKey):
        return headers.get(auth.header.lower()) or None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _missing(auth: Bearer | ApiKey) -> Denied:
    if isinstance(auth, ApiKey):
        return Denied(401, f"Missing API key in header {auth.header}", {})
    return Denied(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})
