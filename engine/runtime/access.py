"""Every HTTP request's id, access log line and metrics, in one ASGI middleware.

The request id is the client's `X-Request-ID` when it sent a sane one, else a new one. It is
answered back in `X-Request-ID`, written in the access line, and kept in `request_id` (a
context variable) so that a proxy route and the run client pass it on.

    2026-12-01 22:15:03,120 INFO engine.access: 127.0.0.1 "GET /items/7" 200 1.4ms id=3f9c...

The access line names the path without its query string (which may carry a token).
"""

from __future__ import annotations

import logging
import random
import re
import time
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "LOG_CONFIG", "RequestLog", "SkipPath", "log_config", "request_id"]

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
_SANE = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being answered (None outside a request)."""

access_log = logging.getLogger("engine.access")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SkipPath(logging.Filter):
    """Leaves the access lines of one path out (the supervisor's health probes, one every
    few seconds, would drown the rest)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) >= 3 and args[2] == self.path)


def log_config(skip_path: str | None = None) -> dict[str, Any]:
    """uvicorn's `log_config`: every line with a timestamp; access lines (from `RequestLog`,
    as uvicorn's own know no request id) without those of `skip_path`."""
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "timed",
        "stream": "ext://sys.stderr",
    }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"timed": {"format": _FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "engine": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
    if skip_path is not None:
        config["filters"] = {"skip": {"()": SkipPath, "path": skip_path}}
        config["loggers"]["engine.access"] = {
            "handlers": ["stderr"],
            "level": "INFO",
            "propagate": False,
            "filters": ["skip"],
        }
    return config


LOG_CONFIG = log_config()
"""The control plane's logging: timestamps, every access line."""


class RequestLog:
    """The middleware: request id in and out, one access line and the metrics per request.

    `metrics` is an `engine.runtime.metrics.RequestMetrics`, or None when they are off.
    """

    def __init__(self, app: ASGIApp, metrics: Any = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _given_id(scope) or new_id()
        token = request_id.set(rid)
        header = (_HEADER_KEY, rid.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            seconds = time.perf_counter() - start
            route = scope.get("route")
            if self.metrics is not None:
                self.metrics.observe(scope["method"], getattr(route, "path", None), status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    '%s "%s %s" %d %.1fms id=%s',
                    client[0] if client else "-",
                    scope["method"],
                    scope["path"],
                    status,
                    seconds * 1000,
                    rid,
                )


def new_id() -> str:
    """A fresh request id: 32 hex digits, like a UUID4's.

    From `random` rather than `uuid.uuid4()`, whose `os.urandom` is a system call per
    request (3% of a webhook delivery): an id must be unique, not unguessable. `random`
    is seeded anew in every process, forked or spawned.
    """
    return f"{random.getrandbits(128):032x}"


def _given_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == _HEADER_KEY:
            return value.decode() if _SANE.match(value) else None
    return None
