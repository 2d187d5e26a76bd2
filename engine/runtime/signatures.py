"""Webhook signature checks: GitHub (`X-Hub-Signature-256`) and Standard Webhooks.

Every comparison is constant-time (`hmac.compare_digest`); several secrets may be given
so that a secret can be rotated without losing deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

from engine.runtime import ConfigError

__all__ = ["BadSignature", "standard_key", "verify_github", "verify_standard"]

TOLERANCE = 300  # seconds a Standard Webhooks timestamp may be off, both ways
_GITHUB = re.compile(r"sha256=([0-9a-fA-F]{64})")
_STAMP = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() accepts "²"


class BadSignature(Exception):
    """Raised when a delivery's signature is missing, malformed, stale or wrong."""


def verify_github(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> None:
    """Check `X-Hub-Signature-256` over the raw `body`; raises BadSignature."""
    header = headers.get("x-hub-signature-256")
    if header is None:
        raise BadSignature("missing X-Hub-Signature-256 header")
    match = _GITHUB.fullmatch(header.strip())
    if match is None:
        raise BadSignature("malformed X-Hub-Signature-256 header")
    given = match.group(1).lower().encode()
    for key in secrets:
        expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(given, expected):
            return
    raise BadSignature("signature does not match")


def standard_key(value: str, var: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional `whsec_`."""
    try:
        return base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ConfigError(
            f"secret {var} is not a Standard Webhooks secret (whsec_<base64>)"
        ) from None


def verify_standard(
    headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float | None = None
) -> None:
    """Check `webhook-id`, `webhook-timestamp` and `webhook-signature`; raises BadSignature."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise BadSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not _STAMP.fullmatch(stamp):
        raise BadSignature("malformed webhook-timestamp header")
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE:
        raise BadSignature("webhook-timestamp is outside the allowed window")
    signed = f"{msg_id}.{stamp}.".encode() + body
    given = [
        sig.encode()
        for version, _, sig in (s.partition(",") for s in signatures.split())
        if version == "v1"
    ]
    for key in keys:
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(sig, expected) for sig in given):
            return
    raise BadSignature("signature does not match")
