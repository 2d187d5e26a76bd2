"""Fixtures for the runtime tests: real servers (uvicorn in a thread or a subprocess) and a
small in-memory implementation of the engine's run API."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

with warnings.catch_warnings():
    # Starlette asks for httpx2; the project pins httpx, which still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient as _TestClient

__all__ = ["TestClient"]


class TestClient(_TestClient):
    """Starlette's TestClient, addressed as 127.0.0.1: generated apps answer loopback hosts."""

    __test__ = False

    def __init__(self, app: Any, base_url: str = "http://127.0.0.1", **kwargs: Any) -> None:
        super().__init__(app, base_url=base_url, **kwargs)

    def websocket_connect(self, url: str, *args: Any, **kwargs: Any) -> Any:
        """Starlette joins WebSocket paths to ws://testserver whatever the base URL."""
        return super().websocket_connect(urljoin("ws://127.0.0.1", url), *args, **kwargs)


REPO = Path(__file__).resolve().parents[2]
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadServer:
    """An ASGI app served by a real uvicorn in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# --- the run API, in memory -------------------------------------------------------------


class RunAPI:
    """The engine's run API (docs/architecture.md) over a dict, with a few scripted tasks.

    add-one: {x: int} -> {y: x + 1}, after 0.1 s; fail: fails with "boom"; slow: 2 s.
    A `key` names one run per task for `key_ttl` s: a duplicate answers 200 with that run
    (the real API over a real store: tests/runs/test_shared_dedupe.py).
    """

    TASKS = {"add-one": 0.1, "fail": 0.1, "slow": 2.0}

    def __init__(self, token: str) -> None:
        self.token = token
        self.runs: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], tuple[str, float]] = {}  # -> (run id, expiry)
        self.changed: dict[str, asyncio.Event] = {}
        self.app = FastAPI()
        self.app.add_api_route("/api/v1/runs", self.create, methods=["POST"], status_code=201)
        self.app.add_api_route("/api/v1/runs/{run_id}", self.get, methods=["GET"])
        self.app.add_api_route("/api/v1/runs/{run_id}/wait", self.wait, methods=["GET"])
        self.app.add_api_route("/api/v1/runs/{run_id}/events", self.events, methods=["GET"])

    def started(self, task: str | None = None) -> list[dict[str, Any]]:
        """Runs created so far (of `task`)."""
        return [r for r in self.runs.values() if task is None or r["task"] == task]

    def _auth(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise HTTPException(401, "bad token")

    async def create(self, request: Request) -> Any:
        self._auth(request)
        data = await request.json()
        task, inputs = data["task"], data.get("inputs") or {}
        if task not in self.TASKS:
            raise HTTPException(404, f"unknown task {task!r}")
        if task == "add-one" and not isinstance(inputs.get("x"), int):
            raise HTTPException(422, [{"loc": ["x"], "msg": "x must be an integer"}])
        run_id = uuid.uuid4().hex[:12]
        if data.get("key") is not None:
            held = self.keys.get((task, data["key"]))
            if held is not None and held[1] > time.monotonic():
                return JSONResponse(dict(self.runs[held[0]]), 200)
            ttl = data.get("key_ttl")
            self.keys[task, data["key"]] = (run_id, time.monotonic() + (ttl or float("inf")))
        run = {
            "id": run_id,
            "task": task,
            "status": "queued",
            "inputs": inputs,
            "outputs": None,
            "error": None,
            "attempts": 0,
            "url": f"http://console/runs/{run_id}",
        }
        self.runs[run_id] = run
        self.changed[run_id] = asyncio.Event()
        asyncio.get_running_loop().create_task(self._execute(run))
        return dict(run)

    async def _execute(self, run: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        self._set(run, status="running", attempts=1)
        await asyncio.sleep(self.TASKS[run["task"]])
        if run["task"] == "fail":
            self._set(run, status="failed", error="boom")
        else:
            self._set(run, status="succeeded", outputs={"y": run["inputs"].get("x", 0) + 1})

    def _set(self, run: dict[str, Any], **changes: Any) -> None:
        run.update(changes)
        self.changed[run["id"]].set()
        self.changed[run["id"]] = asyncio.Event()

    def _find(self, request: Request, run_id: str) -> dict[str, Any]:
        self._auth(request)
        if run_id not in self.runs:
            raise HTTPException(404, "no such run")
        return self.runs[run_id]

    async def get(self, request: Request, run_id: str) -> dict[str, Any]:
        return dict(self._find(request, run_id))

    async def wait(self, request: Request, run_id: str, timeout: float = 30) -> dict[str, Any]:
        run = self._find(request, run_id)
        deadline = time.monotonic() + timeout
        while run["status"] not in FINAL and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.changed[run_id].wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return dict(run)

    async def events(self, request: Request, run_id: str) -> StreamingResponse:
        run = self._find(request, run_id)

        async def stream() -> Any:
            while True:
                changed = self.changed[run_id]
                yield f"data: {json.dumps(run)}\n\n"
                if run["status"] in FINAL:
                    return
                await changed.wait()

        return StreamingResponse(stream(), media_type="text/event-stream")


@pytest.fixture(scope="session")
def run_api_server() -> Iterator[RunAPI]:
    api = RunAPI(token="t0ken")
    with ThreadServer(api.app) as server:
        api.url = server.url  # type: ignore[attr-defined]
        yield api


@pytest.fixture
def run_api(run_api_server: RunAPI, monkeypatch: pytest.MonkeyPatch) -> RunAPI:
    """The in-memory run API, with ENGINE_API_URL and ENGINE_API_TOKEN pointing at it."""
    monkeypatch.setenv("ENGINE_API_URL", run_api_server.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("ENGINE_API_TOKEN", run_api_server.token)
    run_api_server.runs.clear()
    run_api_server.keys.clear()
    return run_api_server


@pytest.fixture
def thread_server() -> Iterator[Callable[[Any], ThreadServer]]:
    """Factory: serve an ASGI app with uvicorn in a thread; stopped at teardown."""
    servers: list[ThreadServer] = []

    def start(app: Any) -> ThreadServer:
        servers.append(ThreadServer(app).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


class ProcessServer:
    """A generated-style module served by `python -m uvicorn` in a subprocess."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.ws_url = url.replace("http://", "ws://")
        self.log = log


@pytest.fixture(scope="module")
def process_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ProcessServer]]:
    """Factory: write `source` as app.py in a temp folder and serve it with uvicorn.

    Each process is stopped by its pid at teardown.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        source: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ProcessServer:
        folder = tmp_path_factory.mktemp("app")
        (folder / "app.py").write_text(source)
        port = free_port()
        log = folder / "server.log"
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": f"{folder}{os.pathsep}{REPO}",
            "ENGINE_DATA_DIR": str(folder / "data"),
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "app:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    *args,
                ],
                cwd=folder,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        server = ProcessServer(proc, f"http://127.0.0.1:{port}", log)
        _wait_healthy(server)
        return server

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(server: ProcessServer) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.log.read_text()}")
        try:
            if httpx.get(server.url + "/health").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"server not healthy: {server.log.read_text()}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real server processes (deselect with -m 'not slow')"
    )
