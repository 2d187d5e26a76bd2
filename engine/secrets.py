"""Resolve secret values at apply time, from the environment, a file or a dotenv file.

Values live only in memory and in the environment of the processes granted them; only
their hashes reach the plan and the state.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ApplyError
from engine.spec.model import SecretSource, Spec


def resolve_secrets(spec: Spec, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every declared secret's value; ApplyError naming each one that cannot be read, or
    that is empty where it is a key (see `empty_keys`)."""
    environ = os.environ if environ is None else environ
    values, problems = {}, []
    for name, source in sorted(spec.secrets.items()):
        try:
            values[name] = _read(spec.root, source, environ)
        except LookupError as exc:
            problems.append(f"secret {name!r}: {exc}")
    problems += empty_keys(spec, values)
    if problems:
        raise ApplyError("cannot read secrets; nothing was started:\n  " + "\n  ".join(problems))
    return values


def empty_keys(spec: Spec, values: Mapping[str, str]) -> list[str]:
    """A problem for each secret that signs a webhook or checks an auth but is empty.

    An HMAC under an empty key is one anybody can compute, and an empty token lets no one
    in, so neither is ever used: apply stops and says which secret to set.
    """
    uses: dict[str, str] = {}
    for app in spec.apps.values():
        for hook in app.webhooks:
            for secret in hook.secrets:
                uses.setdefault(secret, f"it signs webhook {hook.path} of app {app.name!r}")
        auths = [app.auth, *(r.auth for r in app.routes), *(w.auth for w in app.webhooks)]
        auths += [s.auth for s in app.websockets]
        for auth in auths:
            if auth is not None:
                uses.setdefault(auth.secret, f"it is the auth of app {app.name!r}")
    return [
        f"secret {name!r} is empty, but {use}: give it a value "
        f"(from {spec.secrets[name].describe()})"
        for name, use in sorted(uses.items())
        if name in values and not values[name]
    ]


def secret_hash(name: str, value: str) -> str:
    """A stable fingerprint of a secret's value that does not reveal it."""
    return hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()


def _read(root: Path, source: SecretSource, environ: Mapping[str, str]) -> str:
    if source.env:
        if source.env not in environ:
            raise LookupError(f"environment variable {source.env} is not set; export it and retry")
        return environ[source.env]
    path = root / (source.file or source.env_file or "")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LookupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if source.file:
        return text.rstrip("\r\n")
    values = parse_dotenv(text)
    if source.key not in values:
        raise LookupError(f"{path} has no key {source.key}")
    return values[source.key]


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=value` lines; `#` comments, `export ` prefixes and matching quotes allowed."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values
