"""uvicorn's HTTP protocol with deadlines on reading a request's headers and its body.

uvicorn closes idle keep-alive connections (`--timeout-keep-alive`) and sheds load past
`--limit-concurrency` with 503, but waits forever for a request that arrives slowly: a
client sending a byte of headers or body now and then holds its connection, and enough of
them exhaust the app's file descriptors. With this protocol a connection is closed when

- its request's headers are not complete `ENGINE_HEADER_TIMEOUT` seconds (default 10)
  after the connection opened or the request's first byte arrived, or
- its request's body is not complete `ENGINE_BODY_TIMEOUT` seconds (default 60) after
  the headers.

A WebSocket, once upgraded, and a handler still working on a complete request are not
affected. The app launcher passes UVICORN_OPTIONS to `uvicorn.Config`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["UVICORN_ARGS", "UVICORN_OPTIONS", "DeadlineProtocol"]

HEADER_TIMEOUT = float(os.environ.get("ENGINE_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("ENGINE_BODY_TIMEOUT", "60"))

UVICORN_OPTIONS: dict[str, Any] = {
    "http": "engine.runtime.serving:DeadlineProtocol",
    "limit_concurrency": 1000,
    "timeout_keep_alive": 5,
}
"""What the app launcher gives `uvicorn.Config`: these deadlines, 503 past 1000 connections."""

UVICORN_ARGS = tuple(
    part
    for name, value in UVICORN_OPTIONS.items()
    for part in (f"--{name.replace('_', '-')}", str(value))
)
"""The same, as `uvicorn` command-line arguments."""


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol (uvicorn's default) that closes connections whose request is late.

    One timer per connection, moved lazily: a request only notes when its current deadline
    falls, and the timer, when it fires before that, sets itself again for the rest; it is
    replaced only by a deadline that falls before it. (Setting and cancelling a timer at
    each of a request's steps showed in the profile of a small request: docs/performance.md.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._due: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        due = self._due = self.loop.time() + seconds
        if self._timer is not None and self._timer.when() <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(due, self._expire)

    def _disarm(self) -> None:
        self._due = None  # a timer still set finds nothing due when it fires

    def _forget(self) -> None:
        """No deadline any more: the timer, which holds this protocol, goes too."""
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._due is None:
            return
        if self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._expire)
            return
        self._due = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(HEADER_TIMEOUT)

    def on_headers_complete(self) -> None:
        self._arm(BODY_TIMEOUT)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._forget()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()
