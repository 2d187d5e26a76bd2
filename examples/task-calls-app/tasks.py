"""The task: calls add-one-app over HTTP and returns its answer as the run's outputs."""

import httpx

from engine.runtime import endpoint


def add_one_task(x: int) -> dict[str, int]:
    """Ask add-one-app for x + 1.

    `endpoint("add-one-app")` reads ADD_ONE_APP_ENDPOINT, which engine injects because the
    task lists the app in `depends_on`.
    """
    response = httpx.get(endpoint("add-one-app") + "/", params={"x": x}, timeout=10)
    response.raise_for_status()
    return {"result": response.json()["result"]}
