"""Rate limits (`rate_limit: {requests, per, by}`), counted with the `limits` library.

    limiter = Limiter(RateLimit(100, 60.0, "client"), scope="GET /items")
    wait = await limiter.hit(connection)   # None: allowed; else seconds until one fits

Decisions:
* A moving window (`limits`' MovingWindowRateLimiter): exact, at most `requests` in any
  `per` seconds, with no burst at a window's edge. limits' sliding window counter is
  approximate where two windows meet (one request too many can pass there),
  and a fixed window lets twice the limit through at its edge. The moving window keeps
  one timestamp per admitted request and key, at most `requests` of them, and measured
  no slower per count (docs/performance.md).
* limits' asyncio storage and strategy: its expiry is a task on the app's event loop.
  (The threaded storage starts a timer thread every few milliseconds under traffic, and
  each start blocks the event loop until the new thread runs: on a busy machine that
  tripled the p99 in bench/ratelimit.py.)
* Counts live in this process's memory, one storage per process: an app with `replicas: N`
  admits up to N times the limit (one count per worker process), and a restarted app
  starts from zero. No shared store is needed to run the app, which is why.
* `by: client` is the peer address as the app sees it; behind a proxy that is the proxy's,
  so use `header:NAME` there (a request without the header is counted under the empty
  value), or `global`.
* The health check is never limited (the supervisor must always reach it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from limits.aio.storage import MemoryStorage

__all__ = ["Limiter", "RateLimit", "RateLimitMiddleware", "too_many"]


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per` seconds for each key `by` (client, global, header:NAME)."""

    requests: int
    per: float
    by: str = "client"


@cache
def _storage() -> MemoryStorage:
    """This process's counters, shared by every limit of the app (keys carry the scope)."""
    from limits.aio.storage import MemoryStorage

    return MemoryStorage()


class Limiter:
    """One declared limit (`scope` tells it apart from the app's other limits)."""

    def __init__(self, limit: RateLimit, scope: str) -> None:
        from limits import RateLimitItemPerSecond
        from limits.aio.strategies import MovingWindowRateLimiter

        self.limit = limit
        self.scope = scope
        self.item = RateLimitItemPerSecond(limit.requests, max(1, int(limit.per)))
        self.window = MovingWindowRateLimiter(_storage())
        self.header = limit.by.partition(":")[2].lower() if limit.by.startswith("header:") else ""

    def key(self, connection: HTTPConnection) -> str:
        """What this request is counted under."""
        if self.limit.by == "global":
            return ""
        if self.header:
            return "h:" + connection.headers.get(self.header, "")
        return "c:" + (connection.client.host if connection.client else "")

    async def hit(self, connection: HTTPConnection) -> int | None:
        """Count one request; None if it fits, else whole seconds until one would."""
        key = self.key(connection)
        if await self.window.hit(self.item, self.scope, key):
            return None
        reset, _ = await self.window.get_window_stats(self.item, self.scope, key)
        return max(1, math.ceil(reset - time.time()))

    def describe(self) -> str:
        return f"{self.limit.requests} per {_seconds(self.limit.per)}"


def too_many(limiter: Limiter, wait: int) -> JSONResponse:
    """The 429 answer: a JSON body saying the limit and when to retry, and `Retry-After`."""
    body = {"detail": f"rate limit exceeded ({limiter.describe()})", "retry_after": wait}
    return JSONResponse(body, 429, headers={"Retry-After": str(wait)})


class RateLimitMiddleware:
    """The app-wide limit: every HTTP request and WebSocket handshake but the `exempt`
    paths (the health check).

    A handshake over the limit is accepted and closed at once with 1008 (policy violation),
    so that the client sees why.
    """

    def __init__(self, app: ASGIApp, limiter: Limiter, exempt: frozenset[str]) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        wait = await self.limiter.hit(HTTPConnection(scope))
        if wait is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await too_many(self.limiter, wait)(scope, receive, send)
        else:
            socket = WebSocket(scope, receive, send)
            await socket.accept()
            await socket.close(1008, f"rate limit exceeded; retry in {wait}s")


def _seconds(per: float) -> str:
    seconds = int(per)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
