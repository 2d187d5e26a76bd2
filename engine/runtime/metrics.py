"""Prometheus metrics of a generated app (and of the control plane): `GET /metrics`.

Every metric carries the `app` label, so that one process may hold several apps (tests do)
and a scrape says whose numbers they are. Labels are bounded: a route's template
(`/items/{id}`), never a raw path; `unmatched` for a request no route took.

With several uvicorn workers (`replicas` > 1) the serving process sets
`PROMETHEUS_MULTIPROC_DIR` before the workers start (see `multiprocess_dir`); every worker
then writes its values to files there and a scrape of any worker sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "METRICS_PATH",
    "MULTIPROC_VARIABLE",
    "REGISTRY",
    "RequestMetrics",
    "metrics_endpoint",
    "webhook_delivery",
    "websocket_gauge",
]

METRICS_PATH = "/metrics"
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's metrics (in multiprocess mode, the files in PROMETHEUS_MULTIPROC_DIR)."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "engine_http_requests_total",
    "HTTP requests answered, by app, method, route template and status code.",
    ["app", "method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "engine_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by app, method, route "
    "template and status code.",
    ["app", "method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "engine_webhook_deliveries_total",
    "Webhook deliveries by app, webhook path and result: accepted, rejected (a 4xx refusal), "
    "duplicate, ignored (an event with no action, or a ping) or failed (the action answered "
    "5xx).",
    ["app", "path", "result"],
    registry=REGISTRY,
)
WEBSOCKETS = Gauge(
    "engine_websocket_connections",
    "WebSocket connections open now, by app and path.",
    ["app", "path"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


class RequestMetrics:
    """Counts and times one app's requests; the label children are cached per combination."""

    def __init__(self, app: str) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Callable[[], None], Callable]] = {}

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Record one answered request."""
        key = (method, route or UNMATCHED, status)
        child = self._children.get(key)
        if child is None:
            labels = (self.app, method, key[1], str(status))
            child = (REQUESTS.labels(*labels).inc, LATENCY.labels(*labels).observe)
            self._children[key] = child
        child[0]()
        child[1](seconds)


def webhook_delivery(app: str, path: str) -> Callable[[str], None]:
    """A function counting one delivery of webhook `path` with its result."""
    children: dict[str, Callable[[], None]] = {}

    def count(result: str) -> None:
        inc = children.get(result)
        if inc is None:
            inc = children[result] = WEBHOOKS.labels(app, path, result).inc
        inc()

    return count


def websocket_gauge(app: str, path: str) -> Gauge:
    """The gauge of open connections of WebSocket endpoint `path`."""
    return WEBSOCKETS.labels(app, path)


def _registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_VARIABLE):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return merged
    return REGISTRY


async def metrics_endpoint(request: Request) -> Response:
    """`GET /metrics`: every metric of this process (of every worker, in multiprocess mode)."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
