"""Two replicas of a generated webhook app, two run APIs, one PostgreSQL store: the same
delivery sent 50 times at once, split between the replicas, starts exactly one run.

Real processes throughout: the `github-webhook` example's generated app under uvicorn
(twice), and the run API with the real runner, local workers and PostgresRunStore (twice,
each replica talking to its own), over a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from engine.backends.base import RunStatus
from engine.compiler import render_app
from engine.load import load_spec
from engine.runs.store.postgres import PostgresRunStore
from tests.postgres import PASSWORD, PostgresServer
from tests.runs.run_api_process import RunAPIProcess
from tests.runtime.conftest import REPO, ProcessServer

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "github-webhook"
SECRET = "shared-secret"
TOKEN = "run-api-token"


@pytest.fixture(scope="module")
def shared(
    postgres: PostgresServer,
    process_server: Callable[..., ProcessServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[ProcessServer]]]:
    """(store URL, two app replicas), each replica behind its own run API on that store."""
    url = postgres.new_database()
    spec = load_spec(EXAMPLE / "spec.yaml", environ={})
    config = {
        "store": url,
        "project": str(EXAMPLE),
        "token": TOKEN,
        "tasks": [{"name": "deploy", "handler": "tasks:deploy", "concurrency": 1,
                   "inputs": spec.tasks["deploy"].inputs}],
    }  # fmt: skip
    source = render_app(spec, spec.apps["receiver"])
    apis = [RunAPIProcess(tmp_path_factory.mktemp(f"api{n}"), config, PASSWORD) for n in range(2)]
    with apis[0], apis[1]:
        replicas = [
            process_server(
                source,
                env={"GITHUB_SECRET": SECRET, "ENGINE_API_URL": api.url, "ENGINE_API_TOKEN": TOKEN},
            )
            for api in apis
        ]
        yield url, replicas


def delivery(delivery_id: str, after: str = "0" * 40) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"after": after, "ref": "refs/heads/main", "deleted": False}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "X-Hub-Signature-256": f"sha256={signature}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "Content-Type": "application/json",
    }


async def send_many(replicas: list[ProcessServer], delivery_id: str, times: int) -> list[dict]:
    body, headers = delivery(delivery_id)
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{replicas[n % 2].url}/github-webhook", content=body, headers=headers)
                for n in range(times)
            )
        )
    return [{"code": a.status_code, **a.json()} for a in answers]


async def runs_of(url: str) -> list:
    store = await PostgresRunStore.connect(url, password=PASSWORD)
    try:
        return await store.list_runs(task="deploy", limit=1000)
    finally:
        await store.close()


def test_one_delivery_sent_fifty_times_to_two_replicas_starts_one_run(
    shared: tuple[str, list[ProcessServer]],
) -> None:
    url, replicas = shared
    answers = asyncio.run(send_many(replicas, "delivery-1", 50))

    started = [a for a in answers if a["code"] == 202]
    duplicates = [a for a in answers if a["code"] != 202]
    assert len(started) == 1 and started[0]["status"] == "started", answers
    assert duplicates == [{"code": 200, "status": "duplicate", "delivery": "delivery-1"}] * 49
    runs = asyncio.run(runs_of(url))
    assert [r.id for r in runs] == [started[0]["id"]]
    assert runs[0].inputs["delivery"] == "delivery-1"


def test_each_new_delivery_starts_its_own_run_and_it_succeeds(
    shared: tuple[str, list[ProcessServer]],
) -> None:
    url, replicas = shared
    answers = asyncio.run(send_many(replicas, "delivery-2", 10))
    [run_id] = [a["id"] for a in answers if a["code"] == 202]

    async def finished() -> RunStatus:
        store = await PostgresRunStore.connect(url, password=PASSWORD)
        try:
            for _ in range(200):
                run = await store.get(run_id)
                if run is not None and run.finished:
                    return run.status
                await asyncio.sleep(0.05)
        finally:
            await store.close()
        raise AssertionError(f"run {run_id} did not finish")

    assert asyncio.run(finished()) == RunStatus.SUCCEEDED
    assert {r.inputs["delivery"] for r in asyncio.run(runs_of(url))} >= {"delivery-2"}
