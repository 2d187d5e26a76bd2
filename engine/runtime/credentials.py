"""Credentials between the apps of a project, minted per pair from the callee's auth secret.

    mint(secret, project, callee, caller)           # what app `caller` presents to `callee`
    mint(secret, project, callee, caller, "task")   # what task `caller` presents to it

A credential is derived (HMAC-SHA256 of the pair under the callee's secret), so nothing new
is stored: the callee recomputes it from the secret it already has, and the engine hands
it to the caller as a secret variable. `ENGINE_CREDENTIALS` tells the caller's runtime, for
each app it may call, the variable and the header to send it in (never a value). The
caller's kind is part of the pair: an app and a task may share a name, not a credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Literal

from engine.runtime import ConfigError, secret

__all__ = ["CREDENTIALS_VARIABLE", "Caller", "credential_headers", "mint"]

CREDENTIALS_VARIABLE = "ENGINE_CREDENTIALS"
Caller = Literal["app", "task"]
"""What kind of unit presents a credential."""


def mint(key: str, project: str, callee: str, caller: str, kind: Caller = "app") -> str:
    """The credential app (or task) `caller` presents to `callee`, from `callee`'s auth
    secret `key`."""
    if not key:
        raise ValueError(f"app {callee!r}'s auth secret is empty: no credential can be minted")
    message = f"engine {kind} credential\0{project}\0{callee}\0{caller}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def credential_headers(app: str) -> dict[str, str]:
    """The headers that carry this process's credential for `app` ({} if it has none)."""
    where = _declared().get(app)
    if where is None:
        return {}
    value = secret(where["env"])
    if where["kind"] == "bearer":
        return {"Authorization": f"Bearer {value}"}
    return {where["header"]: value}


def _declared() -> dict[str, dict[str, str]]:
    raw = os.environ.get(CREDENTIALS_VARIABLE)
    if not raw:
        return {}
    try:
        declared = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{CREDENTIALS_VARIABLE} is not a JSON object") from None
    if not isinstance(declared, dict):
        raise ConfigError(f"{CREDENTIALS_VARIABLE} is not a JSON object")
    return declared
