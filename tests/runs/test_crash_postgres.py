"""Issue 12 item 2 on PostgreSQL: a control plane killed with -9 while a run is in flight.

Real processes: the run API with the real runner and local workers over PostgresRunStore
(tests/runs/run_api_process.py), killed with SIGKILL once the run's attempt is recorded;
a second one on the same store adopts the worker (which outlives its control plane) and
the run ends once, succeeded, having run one time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from engine.backends.base import AttemptHandle, Run
from engine.backends.local.procs import is_ours
from engine.backends.local.workers import kill_group
from engine.runs.store.postgres import PostgresRunStore
from tests.postgres import PASSWORD, PostgresServer
from tests.runs.run_api_process import RunAPIProcess

TOKEN = "crash-token"


def stored(url: str, run_id: str) -> Run | None:
    async def read() -> Run | None:
        store = await PostgresRunStore.connect(url, password=PASSWORD)
        try:
            return await store.get(run_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_run_in_flight_at_a_kill_9_is_adopted_and_ends_once(
    postgres: PostgresServer, project: Path, tmp_path: Path
) -> None:
    url, marks, state = postgres.new_database(), tmp_path / "marks", tmp_path / "state"
    slow = {"name": "slow", "handler": "tasks:slow", "retries": 1,
            "inputs": {"marks": {"type": "string"}, "seconds": {"type": "number"}}}  # fmt: skip
    config = {"store": url, "project": str(project), "token": TOKEN, "tasks": [slow]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    pid = start = 0
    try:
        with RunAPIProcess(state, config, PASSWORD) as first:
            body = {"task": "slow", "inputs": {"marks": str(marks), "seconds": 2.0}}
            run_id = httpx.post(f"{first.url}/api/v1/runs", json=body, headers=headers).json()["id"]
            deadline = time.monotonic() + 20
            while not (marks.exists() and (run := stored(url, run_id)) and run.handle):
                assert time.monotonic() < deadline, "the run never started"
                time.sleep(0.05)
            pid, start = map(int, AttemptHandle.decode(run.handle).ref.split(":"))
            first.proc.kill()  # SIGKILL: no shutdown, the store is all that is left
            first.proc.wait()
        assert is_ours(pid, start), "the worker outlives its control plane"

        with RunAPIProcess(state, config, PASSWORD) as second:
            done = httpx.get(
                f"{second.url}/api/v1/runs/{run_id}/wait",
                params={"timeout": 30}, headers=headers, timeout=40,
            ).json()  # fmt: skip
    finally:
        kill_group(pid, start)  # in case the test failed with it still running
    assert (done["status"], done["attempts"], done["outputs"]) == ("succeeded", 1, {"slept": 2.0})
    assert marks.read_text().split() == ["start", str(pid), "end", str(pid)]  # ran once
