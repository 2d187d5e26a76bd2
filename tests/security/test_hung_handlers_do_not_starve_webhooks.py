"""Item 11 (the runtime's side): hung synchronous handlers get a 504 after their timeout
and cannot starve the engine's own work: while 45 of them hang, a signed webhook (its
signature check, its run started and its redelivery deduplicated through the run API) is
still answered. A real uvicorn process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.runtime.conftest import (  # noqa: F401 (fixtures)
    ProcessServer,
    RunAPI,
    process_server,
    run_api_server,
)

SECRET = "hung-handler-secret"
SOURCE = """
import os, time
from tests.runtime import declare as rt
from engine.runtime.app import Run

RELEASE = os.environ["RELEASE_FILE"]


def hang() -> dict:
    started = time.monotonic()
    while not os.path.exists(RELEASE) and time.monotonic() - started < 30:
        time.sleep(0.05)
    return {"released": True}


app = rt.create_app(project="p", name="hung")
rt.add_handler_route(app, method="GET", path="/hang", handler=hang)
rt.add_webhook(app, path="/gh", provider="github", secret_envs=("GH_SECRET",),
               events={"push": Run(task="add-one", inputs={"x": 1})})
"""
HUNG = 45


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("release") / "released"


@pytest.fixture(scope="module")
def server(
    process_server: Callable[..., ProcessServer],  # noqa: F811
    run_api_server: RunAPI,  # noqa: F811
    release: Path,
) -> ProcessServer:
    env = {
        "GH_SECRET": SECRET,
        "ENGINE_API_URL": run_api_server.url,  # type: ignore[attr-defined]
        "ENGINE_API_TOKEN": run_api_server.token,
        "RELEASE_FILE": str(release),
        "ENGINE_HANDLER_THREADS": "40",
        "ENGINE_HANDLER_TIMEOUT": "1",
    }
    return process_server(SOURCE, env=env)


def _delivery() -> tuple[bytes, dict[str, str]]:
    body = b'{"ref": "refs/heads/main"}'
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={mac}",
    }


def test_webhooks_are_answered_while_handlers_hang(server: ProcessServer, release: Path) -> None:
    async def main() -> None:
        limits = httpx.Limits(max_connections=HUNG + 5)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            hung = [asyncio.create_task(http.get("/hang")) for _ in range(HUNG)]
            answers = await asyncio.gather(*hung)
            # Every one timed out, and their threads are all still busy: nothing released.
            assert {a.status_code for a in answers} == {504}
            assert "did not answer within 1 s" in answers[0].json()["detail"]
            assert not release.exists()
            body, headers = _delivery()
            delivered = await http.post("/gh", content=body, headers=headers)
            assert (delivered.status_code, delivered.json()["status"]) == (202, "started")
            again = await http.post("/gh", content=body, headers=headers)
            assert again.json()["status"] == "duplicate"  # dedupe ran, off the handlers' pool
            assert (await http.get("/health")).status_code == 200
            release.touch()

    asyncio.run(main())
