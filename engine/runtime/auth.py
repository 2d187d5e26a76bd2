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

__all__ = ["ApiKey", "Bearer", "Denied", "Guard", "resolve"]


@dataclass(frozen=True)
class Bearer:
    """`Authorization: Bearer <token>`, the token being the secret in `secret_env`."""

    secret_env: str


@dataclass(frozen=True)
class ApiKey:
    """A key in header `header`, equal to the secret in `secret_env`."""

    header: str
    secret_env: str


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
    expected: bytes = b""

    def check(self, headers: Mapping[str, str]) -> Denied | None:
        """None if `headers` carry the right credentials, else why not (401 or 403)."""
        if self.auth is None:
            return None
        given = _credential(self.auth, headers)
        if given is None:
            return _missing(self.auth)
        if not hmac.compare_digest(given.encode(), self.expected):
            return Denied(403, "Invalid credentials", {})
        return None


def resolve(auth: Auth) -> Guard:
    """Read the secret of `auth` now; raises ConfigError naming the variable if it is absent."""
    if auth is None:
        return Guard(None)
    return Guard(auth, secret(auth.secret_env).encode())


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
