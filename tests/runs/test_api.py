from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from engine.backends.base import TaskUnit
from engine.runs.api import make_router
from engine.runs.runner import Runner
from engine.runs.store.sqlite import SQLiteRunStore
from tests.runs.conftest import Stores, executor, sqlite_only

TOKEN = "s3cret-token"
N = 300  # concurrent submissions in the load test (bench/ submits 2,000)


class Server:
    """A control plane with only the run API, served by uvicorn in a thread, its runs in
    a store of `stores` and its logs and workers in `stores.folder / ".engine"`."""

    def __init__(self, stores: Stores, tasks: list[TaskUnit]) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        store = stores.open()
        state = stores.folder / ".engine"
        workers = executor(state)
        runner = Runner(store, workers, state / "runs", self.url)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await runner.configure(tasks, {})
            await runner.start()
            yield
            await runner.stop()
            await workers.close()
            await store.close()

        app = FastAPI(lifespan=lifespan)
        app.include_router(make_router(runner, store, token=TOKEN, base_url=self.url))
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def api(stores: Stores, task: Callable[..., TaskUnit]) -> Iterator[httpx.Client]:
    """A client of a real control plane serving tasks add, sleep and talk, on each store."""
    tasks = [
        task("add", inputs={"x": {"type": "integer"}, "y": {"type": "integer", "default": 1}}),
        task("sleep"),
        task("talk"),
    ]
    with Server(stores, tasks) as client:
        yield client


def test_post_get_and_wait(api: httpx.Client) -> None:
    created = api.post("/api/v1/runs", json={"task": "add", "inputs": {"x": 41}})
    assert created.status_code == 201
    run = created.json()
    assert (run["task"], run["inputs"], run["url"]) == (
        "add", {"x": 41, "y": 1}, f"{str(api.base_url).rstrip('/')}/runs/{run['id']}",
    )  # fmt: skip

    done = api.get(f"/api/v1/runs/{run['id']}/wait", params={"timeout": 20})
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["outputs"]) == ("succeeded", {"sum": 42})
    got = api.get(f"/api/v1/runs/{run['id']}")
    assert got.status_code == 200
    assert got.json() == done.json()


def test_wait_answers_200_with_the_run_as_it_is_when_time_runs_out(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs", json={"task": "sleep", "inputs": {"seconds": 5}}).json()

    waited = api.get(f"/api/v1/runs/{run['id']}/wait", params={"timeout": 0.2})

    assert waited.status_code == 200
    assert waited.json()["status"] in ("queued", "running")
    assert api.post(f"/api/v1/runs/{run['id']}/cancel").json()["status"] == "cancelled"


def test_unknown_task_and_bad_inputs(api: httpx.Client) -> None:
    unknown = api.post("/api/v1/runs", json={"task": "ad", "inputs": {"x": 1}})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown task 'ad'; did you mean 'add'?"}

    bad = api.post("/api/v1/runs", json={"task": "add", "inputs": {"x": "one"}})
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": [
            {"loc": ["body", "inputs", "x"], "msg": "'one' is not of type 'integer'",
             "type": "run_input"}
        ]
    }  # fmt: skip
    assert api.get("/api/v1/runs").json() == {"runs": []}


@sqlite_only
def test_unknown_run_is_404_everywhere(api: httpx.Client) -> None:
    for method, path in [("GET", ""), ("GET", "/wait"), ("GET", "/events"), ("GET", "/logs"),
                         ("POST", "/cancel")]:  # fmt: skip
        response = api.request(method, f"/api/v1/runs/nope{path}")
        assert (response.status_code, response.json()) == (404, {"detail": "unknown run 'nope'"})


def test_events_stream_each_change_until_a_final_state(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs", json={"task": "sleep", "inputs": {"seconds": 0.3}}).json()

    with api.stream("GET", f"/api/v1/runs/{run['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line.removeprefix("data: "))
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]

    statuses = [event["status"] for event in events]
    assert statuses in (["queued", "running", "succeeded"], ["running", "succeeded"])
    assert events[-1]["outputs"] == 0.3


def test_list_filters_newest_first(api: httpx.Client) -> None:
    ids = [
        api.post("/api/v1/runs", json={"task": task, "inputs": inputs}).json()["id"]
        for task, inputs in [("add", {"x": 1}), ("sleep", {"seconds": 0}), ("add", {"x": 2})]
    ]
    for run_id in ids:
        api.get(f"/api/v1/runs/{run_id}/wait", params={"timeout": 20})

    def listed(**params: object) -> list[str]:
        response = api.get("/api/v1/runs", params=params)
        assert response.status_code == 200
        return [run["id"] for run in response.json()["runs"]]

    assert listed() == ids[::-1]
    assert listed(task="add") == [ids[2], ids[0]]
    assert listed(task="add", status="succeeded", limit=1) == [ids[2]]
    assert listed(status="failed") == []
    assert api.get("/api/v1/runs", params={"status": "odd"}).status_code == 422


def test_logs_are_plain_text(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs", json={"task": "talk", "inputs": {"text": "hi"}}).json()
    api.get(f"/api/v1/runs/{run['id']}/wait", params={"timeout": 20})

    logs = api.get(f"/api/v1/runs/{run['id']}/logs")

    assert logs.status_code == 200
    assert logs.headers["content-type"].startswith("text/plain")
    assert logs.text == "out: hi\nerr: hi\nfrom-child\n"


@sqlite_only
def test_the_log_api_sends_a_range_and_the_size(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs", json={"task": "talk", "inputs": {"text": "hi"}}).json()
    api.get(f"/api/v1/runs/{run['id']}/wait", params={"timeout": 20})
    url = f"/api/v1/runs/{run['id']}/logs"

    whole = api.get(url)
    part = api.get(url, params={"offset": 5, "limit": 7})
    tail = api.get(url, params={"offset": 16})
    beyond = api.get(url, params={"offset": 1000})

    assert whole.text == "out: hi\nerr: hi\nfrom-child\n"
    assert whole.headers["x-log-size"] == str(len(whole.content))
    assert (part.status_code, part.text, part.headers["x-log-size"]) == (200, "hi\nerr:", "27")
    assert tail.text == "from-child\n"
    assert (beyond.status_code, beyond.text) == (200, "")
    assert api.get(url, params={"offset": -1}).status_code == 422


@sqlite_only
@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Basic abc"}, 401), ({"Authorization": "Bearer wrong"}, 403)],
    ids=["missing", "not-bearer", "wrong"],
)
def test_the_token_is_required(api: httpx.Client, headers: dict[str, str], status: int) -> None:
    with httpx.Client(base_url=api.base_url, headers=headers) as client:
        assert client.get("/api/v1/runs").status_code == status
        assert client.post("/api/v1/runs", json={"task": "add"}).status_code == status


def test_openapi_documents_the_run_api(tmp_path: Path, task: Callable[..., TaskUnit]) -> None:
    store = SQLiteRunStore(tmp_path / "runs.db")
    app = FastAPI()
    runner = Runner(store, executor(tmp_path), tmp_path)
    app.include_router(make_router(runner, store, token=TOKEN, base_url=""))
    schema = app.openapi()
    asyncio.run(store.close())
    paths = schema["paths"]
    assert sorted(paths) == [
        "/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/cancel",
        "/api/v1/runs/{run_id}/events", "/api/v1/runs/{run_id}/logs", "/api/v1/runs/{run_id}/wait",
    ]  # fmt: skip
    assert paths["/api/v1/runs"]["post"]["summary"] == "Start a run"
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_many_concurrent_submissions_all_succeed(api: httpx.Client) -> None:
    async def submit_all() -> list[str]:
        headers = dict(api.headers)
        async with httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=60) as client:

            async def one(x: int) -> str:
                response = await client.post(
                    "/api/v1/runs", json={"task": "add", "inputs": {"x": x}}
                )
                assert response.status_code == 201
                return response.json()["id"]

            return await asyncio.gather(*(one(x) for x in range(N)))

    ids = asyncio.run(submit_all())
    assert len(set(ids)) == N

    def count(status: str) -> int:
        params = {"status": status, "limit": 1000}
        return len(api.get("/api/v1/runs", params=params).json()["runs"])

    deadline = time.monotonic() + 30
    while count("queued") or count("running"):
        assert time.monotonic() < deadline, "runs did not finish"
        time.sleep(0.1)
    assert count("failed") == 0
    last = api.get(f"/api/v1/runs/{ids[-1]}").json()
    assert (last["status"], last["outputs"]) == ("succeeded", {"sum": N})
