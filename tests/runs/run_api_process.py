"""A control plane reduced to the run API, as its own uvicorn process, on a PostgreSQL store.

    python -m tests.runs.run_api_process CONFIG.json

CONFIG: {"store": "postgresql://...", "project": the folder of the task modules, "state":
a folder for logs and workers, "port": int, "token": str, "tasks": [{"name", "handler",
"concurrency", "retries", "inputs"}]}; the store's password is `ENGINE_RUN_STORE_PASSWORD`.
The real runner, local task executor, run store and run API, wired as the control plane
wires them; what it leaves out (apps, the console) no test of it needs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from engine.backends.base import Bundle, ProjectContext, TaskUnit
from engine.backends.local.tasks import LocalTaskExecutor
from engine.runs.api import make_router
from engine.runs.inputs import input_schema
from engine.runs.runner import Runner
from engine.runs.store.postgres import PostgresRunStore


def _units(config: dict[str, Any], project: Path) -> list[TaskUnit]:
    files = tuple(sorted(p.name for p in project.glob("*.py")))
    units = []
    for task in config["tasks"]:
        bundle = Bundle(task["name"], "task", "v1", project, files)
        units.append(
            TaskUnit(
                task["name"], "v1", task["handler"], bundle,
                concurrency=task.get("concurrency", 1), retries=task.get("retries", 0),
                input_schema=input_schema(task.get("inputs") or {}),
            )
        )  # fmt: skip
    return units


def build(config: dict[str, Any]) -> FastAPI:
    """The run API's app for `config`, its runner started and stopped by its lifespan."""
    project = Path(config["project"])
    state = Path(config["state"])
    url = f"http://127.0.0.1:{config['port']}"
    store = PostgresRunStore(config["store"], password=os.environ["ENGINE_RUN_STORE_PASSWORD"])
    context = ProjectContext("test", project, url, config["token"])
    executor = LocalTaskExecutor(
        context, {"PATH": os.environ.get("PATH", "")}, state / "runs", state / "secrets"
    )
    runner = Runner(store, executor, state / "runs", url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runner.configure(_units(config, project), {})
        await runner.start()
        yield
        await runner.stop()
        await executor.close()
        await store.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(make_router(runner, store, token=config["token"], base_url=url))
    return app


class RunAPIProcess:
    """Start this module as a process on a free port; stopped by its pid on exit."""

    def __init__(self, state: Path, config: dict[str, Any], password: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        state.mkdir(parents=True, exist_ok=True)
        self.config = {**config, "state": str(state), "port": port}
        self.url = f"http://127.0.0.1:{port}"
        self.log = state / "run-api.log"
        (state / "config.json").write_text(json.dumps(self.config))
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "ENGINE_RUN_STORE_PASSWORD": password,
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.runs.run_api_process", str(state / "config.json")],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def __enter__(self) -> RunAPIProcess:
        headers = {"Authorization": f"Bearer {self.config['token']}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"run API exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/runs", headers=headers).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"run API did not answer: {self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    uvicorn.run(build(config), host="127.0.0.1", port=config["port"], log_level="warning")


if __name__ == "__main__":
    main()
