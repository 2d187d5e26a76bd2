"""What the runner records for Prometheus: each finished run, by task and final status.

Queued and running runs are counted at scrape time from the store (engine.server.metrics),
so that they are right after a control plane restart too.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from engine.backends.base import Run
from engine.runtime.metrics import REGISTRY

FINISHED = Counter(
    "engine_runs_finished_total",
    "Runs that reached a final state, by task and status (succeeded, failed, cancelled, "
    "timed_out).",
    ["task", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "engine_run_duration_seconds",
    "Time from a run's last attempt starting to its end, by task and final status.",
    ["task", "status"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)


def record_run(run: Run) -> None:
    """Count `run` if it has just finished (the runner reports each change once)."""
    if not run.finished:
        return
    status = str(run.status)
    FINISHED.labels(run.task, status).inc()
    if run.started_at is not None and run.finished_at is not None:
        DURATION.labels(run.task, status).observe(max(0.0, run.finished_at - run.started_at))
