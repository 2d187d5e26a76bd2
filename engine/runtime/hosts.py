"""Which requests an app answers at all: by their `Host`, a browser's `Origin`, and body type.

An app on 127.0.0.1 is reachable from any web page a person on the machine opens: by DNS
rebinding (a name the page controls resolves to 127.0.0.1, so the request's `Host` is that
name) and by plain cross-site requests (a form or `fetch(..., {mode: "no-cors"})` posting
`text/plain`, which needs no CORS approval). So:

- a `Host` the app does not serve answers 400 (Starlette's TrustedHostMiddleware);
- a request with an `Origin` naming another host answers 403 (browsers send `Origin` on
  every cross-origin request but GET/HEAD, and on every WebSocket handshake);
- a body that is not declared JSON answers 415 (a cross-site page cannot send
  `application/json` without a CORS preflight, which generated apps never approve).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "OriginGuard", "allowed_hosts", "is_json"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""What an app answers on the local target unless the spec says `allowed_hosts:`."""

HOSTS_VARIABLE = "ENGINE_ALLOWED_HOSTS"
"""Comma-separated default for a target whose apps are reached by other names; cluster
targets set `*` (any host: Service names, pod IPs, a proxy's address)."""


def allowed_hosts(declared: Sequence[str] | None) -> tuple[str, ...]:
    """The app's `allowed_hosts`, else `ENGINE_ALLOWED_HOSTS`, else the loopback names."""
    if declared:
        return tuple(declared)
    configured = [h.strip() for h in os.environ.get(HOSTS_VARIABLE, "").split(",")]
    return tuple(h for h in configured if h) or LOOPBACK_HOSTS


class OriginGuard:
    """Refuses (403) HTTP requests and WebSocket handshakes whose `Origin` is another host."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = [h.lower() for h in hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not self.allows(origin):
                answer = PlainTextResponse("cross-origin request refused", status_code=403)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allows(self, origin: str) -> bool:
        """Whether a request sent from a page of `origin` may reach the app."""
        if "*" in self.hosts:  # any host: the app's network is not a person's machine
            return True
        try:
            host = urlsplit(origin).hostname  # None for `null` (sandboxed pages, files)
        except ValueError:
            return False
        if not host:
            return False
        host = f"[{host}]" if ":" in host else host
        return any(
            host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
            for pattern in self.hosts
        )


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type says JSON: `application/json` or `application/<x>+json`."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
