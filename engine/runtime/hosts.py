"""Which requests an app answers at all: by their `Host`, a browser's `Origin`, and body type.

An app on 127.0.0.1 is reachable from any web page a person on the machine opens: by DNS
rebinding (a name the page controls resolves to 127.0.0.1, so the request's `Host` is that
name) and by plain cross-site requests (a form or `fetch(..., {mode: "no-cors"})` posting
`text/plain`, which needs no CORS approval). So:

- a `Host` the app does not serve answers 400 (as Starlette's TrustedHostMiddleware would);
- a request with an `Origin` naming another host answers 403 (browsers send `Origin` on
  every cross-origin request but GET/HEAD, and on every WebSocket handshake);

both checked by `HostGuard`, one ASGI layer that reads the headers once;
- a body that is not declared JSON answers 415 (a cross-site page cannot send
  `application/json` without a CORS preflight, which generated apps never approve).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from starlette._utils import parse_host_header
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "HostGuard", "allowed_hosts", "is_json"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""What an app answers on the local target unless the spec says `allowed_hosts:`."""

HOSTS_VARIABLE = "ENGINE_ALLOWED_HOSTS"
"""Comma-separated default for a target whose apps are reached by other names; cluster
targets set `*` (any host: Service names, pod IPs, a proxy's address)."""

_HOST = b"host"
_ORIGIN = b"origin"
_REMEMBERED = 256
"""How many distinct `Host` and `Origin` values a guard remembers its answer for: clients
send the same few on every request, and a flood of made-up ones must not grow memory."""


def allowed_hosts(declared: Sequence[str] | None) -> tuple[str, ...]:
    """The app's `allowed_hosts`, else `ENGINE_ALLOWED_HOSTS`, else the loopback names."""
    if declared:
        return tuple(declared)
    configured = [h.strip() for h in os.environ.get(HOSTS_VARIABLE, "").split(",")]
    return tuple(h for h in configured if h) or LOOPBACK_HOSTS


class HostGuard:
    """Refuses HTTP requests and WebSocket handshakes for a `Host` the app does not serve
    (400) or sent from a page of another host (`Origin`, 403).

    `hosts` are names, `[v6]` literals or `*.domain` patterns (the spec's schema checks
    them); `*` allows every host. The answer for each header value is remembered, so a
    request costs one pass over its headers and a dictionary lookup or two.
    """

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = [h.lower() for h in hosts]
        self.any = "*" in self.hosts
        self._hosts: dict[bytes, bool] = {}
        self._origins: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = None
        for key, value in scope["headers"]:
            if key == _HOST:
                host = value if host is None else host
            elif key == _ORIGIN:
                origin = value if origin is None else origin
        if not self._remember(self._hosts, host, self.allows_host):
            await PlainTextResponse("Invalid host header", 400)(scope, receive, send)
        elif origin is not None and not self._remember(self._origins, origin, self.allows_origin):
            await PlainTextResponse("cross-origin request refused", 403)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _remember(
        answers: dict[bytes, bool], value: bytes | None, decide: Callable[[str], bool]
    ) -> bool:
        if value is None:
            return False
        known = answers.get(value)
        if known is None:
            known = decide(value.decode("latin-1"))
            if len(answers) < _REMEMBERED:
                answers[value] = known
        return known

    def allows_host(self, header: str) -> bool:
        """Whether a request whose `Host` header is `header` is for this app."""
        if self.any:
            return True
        parsed = parse_host_header(header)
        return parsed is not None and self._matches(parsed.host.lower())

    def allows_origin(self, origin: str) -> bool:
        """Whether a request sent from a page of `origin` may reach the app."""
        if self.any:  # any host: the app's network is not a person's machine
            return True
        try:
            host = urlsplit(origin).hostname  # None for `null` (sandboxed pages, files)
        except ValueError:
            return False
        if not host:
            return False
        return self._matches(f"[{host}]" if ":" in host else host)

    def _matches(self, host: str) -> bool:
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
