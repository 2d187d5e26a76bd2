"""The control plane's `GET /metrics`: its requests, the runs and the apps it supervises.

Request counts and latencies come from `engine.runtime.access.RequestLog` (app label
`control-plane`); finished runs and their durations from `engine.runs.metrics`. What is
true *now* (runs queued or running, each app's state and restarts) is read at scrape time,
from the run store and the backend, so it is right after a control plane restart too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

import engine.runs.metrics  # noqa: F401  (registers the runner's metrics)
from engine.runtime.access import RequestLog
from engine.runtime.metrics import METRICS_PATH, REGISTRY, RequestMetrics, metrics_endpoint

APP_LABEL = "control-plane"
ACTIVE = ("queued", "running")


class PlaneCollector(Collector):
    """Scrape-time metrics from `runs` (the queued and running runs) and `apps` (each app as
    `engine status --json` shows it), both read just before the scrape."""

    def __init__(self) -> None:
        self.runs: Iterable[Any] = ()
        self.apps: list[dict[str, Any]] = []

    def collect(self) -> Iterator[Metric]:
        counts: dict[tuple[str, str], int] = {}
        for run in self.runs:
            key = (run.task, str(run.status))
            counts[key] = counts.get(key, 0) + 1
        active = GaugeMetricFamily(
            "engine_runs_active", "Runs queued or running now, by task and status.",
            labels=["task", "status"],
        )  # fmt: skip
        queue = GaugeMetricFamily(
            "engine_run_queue_depth", "Runs waiting for a worker, by task.", labels=["task"]
        )
        tasks = sorted({task for task, _ in counts})
        for task in tasks:
            for status in ACTIVE:
                active.add_metric([task, status], counts.get((task, status), 0))
            queue.add_metric([task], counts.get((task, "queued"), 0))
        yield active
        yield queue
        restarts = CounterMetricFamily(
            "engine_app_restarts", "Times the supervisor restarted an app's process, by app.",
            labels=["app"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "engine_app_up", "1 if the app is running (healthy), else 0, by app.", labels=["app"]
        )
        for app in self.apps:
            name = str(app["name"])
            restarts.add_metric([name], float(app.get("restarts") or 0))
            up.add_metric([name], 1.0 if app.get("state") == "running" else 0.0)
        yield restarts
        yield up


_COLLECTOR = PlaneCollector()  # one per process (a registry refuses a second of the same names)
REGISTRY.register(_COLLECTOR)


def install_metrics(
    app: FastAPI,
    unfinished: Callable[[], Awaitable[Iterable[Any]]],
    apps: Callable[[], Awaitable[list[dict[str, Any]]]],
) -> None:
    """Add `GET /metrics` and the request middleware to the control plane's `app`;
    `unfinished()` gives the queued and running runs (the run store's), `apps()` the apps."""

    async def scrape(request: Request) -> Response:
        _COLLECTOR.runs, _COLLECTOR.apps = await unfinished(), await apps()
        return await metrics_endpoint(request)

    app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestLog, metrics=RequestMetrics(APP_LABEL))
