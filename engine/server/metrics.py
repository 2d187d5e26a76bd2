"""The control plane's `GET /metrics`: its requests, the runs and the apps it supervises.

Request counts and latencies come from `engine.runtime.access.RequestLog` (app label
`control-plane`); finished runs and their durations from `engine.runs.metrics`. What is
true *now* (runs queued or running, each app's state and restarts) is read at scrape time,
from the run store and the backend, so it is right after a control plane restart too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import engine.runs.metrics  # noqa: F401  (registers the runner's metrics)
from engine.runtime.access import RequestLog
from engine.runtime.metrics import METRICS_PATH, REGISTRY, RequestMetrics, metrics_endpoint

APP_LABEL = "control-plane"
ACTIVE = ("queued", "running")


class PlaneCollector(Collector):
    """Scrape-time metrics: `unfinished()` lists queued and running runs, `apps()` each app
    as `engine status --json` shows it."""

    def __init__(self) -> None:
        self.unfinished: Callable[[], Iterable[Any]] = list
        self.apps: Callable[[], list[dict[str, Any]]] = list

    def collect(self) -> Iterator[Metric]:
        counts: dict[tuple[str, str], int] = {}
        for run in self.unfinished():
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
        for app in self.apps():
            name = str(app["name"])
            restarts.add_metric([name], float(app.get("restarts") or 0))
            up.add_metric([name], 1.0 if app.get("state") == "running" else 0.0)
        yield restarts
        yield up


_COLLECTOR = PlaneCollector()  # one per process (a registry refuses a second of the same names)
REGISTRY.register(_COLLECTOR)


def install_metrics(
    app: FastAPI, unfinished: Callable[[], Iterable[Any]], apps: Callable[[], list[dict[str, Any]]]
) -> None:
    """Add `GET /metrics` and the request middleware to the control plane's `app`."""
    _COLLECTOR.unfinished, _COLLECTOR.apps = unfinished, apps
    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestLog, metrics=RequestMetrics(APP_LABEL))
