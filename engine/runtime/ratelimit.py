"""Rate limits (`rate_limit: {requests, per, by}`), counted in this process's memory.

    limiter = Limiter(RateLimit(100, 60.0, "client"))
    wait = await limiter.hit(connection)   # None: allowed; else seconds until one fits

Decisions:
* A moving window: exact, at most `requests` in any `per` seconds, with no burst at a
  window's edge (a sliding window counter is approximate where two windows meet, and a
  fixed window lets twice the limit through at its edge). It keeps the time of each
  admitted request per key, oldest first, at most `requests` of them.
* Our own, on a deque per key, rather than the `limits` library: its in-memory moving
  window inserts each hit at the front of a list (a copy of every entry held: 17 us a hit
  at 100,000 entries against 6 at 100), and its expiry hands every key's list to a thread
  and copies it, again and again under traffic; a never-refusing limit cost 55-60% of a
  route's requests/s (docs/performance.md, "Rate limits"). Here a hit drops the expired
  times at the deque's left end and appends one: constant time, on the event loop, no
  lock (nothing in it awaits).
* Counts live in this process's memory, one set per limit: an app with `replicas: N`
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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

__all__ = ["Limiter", "MovingWindow", "RateLimit", "RateLimitMiddleware", "too_many"]


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per` seconds for each key `by` (client, global, header:NAME)."""

    requests: int
    per: float
    by: str = "client"


class MovingWindow:
    """At most `requests` hits in any `per` seconds, per key; `clock` is monotonic seconds.

    Keys whose window emptied are dropped once per `per` seconds, so a limit `by: client`
    holds only the clients seen within its window.
    """

    def __init__(
        self, requests: int, per: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.requests = requests
        self.per = per
        self.clock = clock
        self.keys: dict[str, deque[float]] = {}
        self.swept = clock()

    def hit(self, key: str) -> float | None:
        """Count one hit of `key`: None if it fits, else the seconds until one would."""
        now = self.clock()
        if now - self.swept >= self.per:
            self._sweep(now)
        times = self.keys.get(key)
        if times is None:
            times = self.keys[key] = deque()
        cutoff = now - self.per
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.requests:
            return times[0] - cutoff
        times.append(now)
        return None

    def _sweep(self, now: float) -> None:
        cutoff = now - self.per
        self.keys = {k: t for k, t in self.keys.items() if t and t[-1] > cutoff}
        self.swept = now


class Limiter:
    """One declared limit, with counts of its own."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.window = MovingWindow(limit.requests, max(1, int(limit.per)))
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
        wait = self.window.hit(self.key(connection))
        return None if wait is None else max(1, math.ceil(wait))

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
