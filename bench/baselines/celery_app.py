"""The Celery baseline of bench/runs.py: the same trivial task, Redis as broker and backend.

Started by the benchmark as `celery -A celery_app worker --pool prefork --concurrency N`
with `CELERY_REDIS_URL` pointing at a redis-server it started on 127.0.0.1. Everything
else is Celery's default configuration.
"""

from __future__ import annotations

import os
import time

from celery import Celery

REDIS = os.environ.get("CELERY_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench_runs", broker=REDIS, backend=REDIS)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task
def echo(i: int, sent: float) -> dict:
    """Return the input, and when the task started (to measure queue-to-start)."""
    return {"i": i, "sent": sent, "started": time.time()}
