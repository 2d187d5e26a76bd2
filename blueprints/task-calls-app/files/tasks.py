"""The task: calls the app over HTTP and returns its answer as the run's outputs."""

import os

import httpx

from engine.runtime import endpoint


def add_one_task(x: int) -> dict[str, int]:
    """Ask the app (named in TARGET_APP, which the spec sets) for x + 1.

    `endpoint(name)` reads <NAME>_ENDPOINT, which engine injects because the task lists the
    app in `depends_on`.
    """
    response = httpx.get(endpoint(os.environ["TARGET_APP"]) + "/", params={"x": x}, timeout=10)
    response.raise_for_status()
    return {"result": response.json()["result"]}
