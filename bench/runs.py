"""End-to-end runs/s of 2,000 trivial runs, and their queue-to-start latency p50/p99.

engine: an applied project whose task returns its input, `concurrency:` = the core count;
2,000 runs are POSTed to the run API at once (an asyncio httpx client, at most 50 requests
in flight), then the list API is polled until none is queued or running. Every run is then
read back (succeeded, its output equal to its input) and counted in the run store
(`.engine/runs.db`). Queue-to-start is `started_at - created_at` of each run's JSON.

Baseline, in the same run: Celery 5 with Redis (a redis-server started here on 127.0.0.1,
no persistence), a prefork worker with the same number of processes and the same task
(bench/baselines/celery_app.py); 2,000 `delay()` calls, then every result is waited for.
Queue-to-start is `time.time()` at task start minus a timestamp taken before `delay()`.

Targets: >= 2x Celery's runs/s with every run durably stored; p50 queue-to-start <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import ROOT, free_port, stop, table

CORES = os.cpu_count() or 1
IN_FLIGHT = 50
WARMUP = 20
SPEC = f"""version: 1
project: bench-runs
tasks:
  echo:
    handler: 'tasks:echo'
    concurrency: {CORES}
    inputs: {{i: {{type: integer}}}}
"""
TASKS = "def echo(i: int) -> dict:\n    return {'i': i}\n"


def set_in_flight(n: int) -> None:
    global IN_FLIGHT
    IN_FLIGHT = n


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# ---------------------------------------------------------------------------- engine


async def _submit_all(client: httpx.AsyncClient, start: int, count: int) -> list[str]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def submit(i: int) -> str:
        async with gate:
            response = await client.post("/api/v1/runs", json={"task": "echo", "inputs": {"i": i}})
        response.raise_for_status()
        return response.json()["id"]

    return await asyncio.gather(*(submit(i) for i in range(start, start + count)))


async def _drained(client: httpx.AsyncClient) -> None:
    while True:
        busy = 0
        for status in ("queued", "running"):
            response = await client.get("/api/v1/runs", params={"status": status, "limit": 1})
            busy += len(response.raise_for_status().json()["runs"])
        if not busy:
            return
        await asyncio.sleep(0.02)


async def _read_all(client: httpx.AsyncClient, ids: list[str]) -> list[dict]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def read(run_id: str) -> dict:
        async with gate:
            return (await client.get(f"/api/v1/runs/{run_id}")).raise_for_status().json()

    return await asyncio.gather(*(read(run_id) for run_id in ids))


async def _drive_engine(url: str, token: str, count: int) -> dict:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as client:
        await _submit_all(client, -WARMUP, WARMUP)  # warm-up: connections, workers
        await _drained(client)
        start = time.perf_counter()
        ids = await _submit_all(client, 0, count)
        await _drained(client)
        elapsed = time.perf_counter() - start
        runs = await _read_all(client, ids)
    bad = [r for r in runs if r["status"] != "succeeded" or r["outputs"] != r["inputs"]]
    if bad:
        raise RuntimeError(f"{len(bad)} runs did not succeed with their input, e.g. {bad[0]}")
    waits = [_ts(r["started_at"]) - _ts(r["created_at"]) for r in runs]
    return {"elapsed": elapsed, "waits": waits, "ids": ids}


def _stored(db: Path, ids: list[str]) -> int:
    """How many of `ids` the run store holds as succeeded (read from the file itself)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
        (n,) = conn.execute(
            "SELECT count(*) FROM runs JOIN wanted USING (id) WHERE status = 'succeeded'"
        ).fetchone()
    return n


def measure_engine(count: int) -> dict:
    cli = [sys.executable, "-m", "engine.cli"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "tasks.py").write_text(TASKS)
        subprocess.run([*cli, "apply", "spec.yaml"], cwd=folder, check=True, capture_output=True)
        try:
            info = json.loads((folder / ".engine" / "control-plane.json").read_text())
            result = asyncio.run(_drive_engine(info["url"], info["token"], count))
            result["stored"] = _stored(folder / ".engine" / "runs.db", result.pop("ids"))
            return result
        finally:
            subprocess.run([*cli, "destroy", "spec.yaml"], cwd=folder, capture_output=True)


# ---------------------------------------------------------------------------- Celery


def _wait_redis(port: int, timeout: float = 10.0) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not answer in {timeout} s")


def measure_celery(count: int) -> dict:
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker = None
    try:
        _wait_redis(redis_port)
        os.environ["CELERY_REDIS_URL"] = redis_url
        baselines = str(ROOT / "bench" / "baselines")
        sys.path.insert(0, baselines)
        from celery_app import echo

        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker"]
            + ["--pool", "prefork", "--concurrency", str(CORES), "--loglevel", "warning"],
            cwd=baselines,
            env={**os.environ, "CELERY_REDIS_URL": redis_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(WARMUP):  # warm-up: the worker is up and every child has run once
            echo.delay(-i, time.time()).get(timeout=60)
        start = time.perf_counter()
        pending = [echo.delay(i, time.time()) for i in range(count)]
        results = [r.get(timeout=300) for r in pending]
        elapsed = time.perf_counter() - start
        if sorted(r["i"] for r in results) != list(range(count)):
            raise RuntimeError("Celery lost or duplicated results")
        waits = [r["started"] - r["sent"] for r in results]
        return {"elapsed": elapsed, "waits": waits}
    finally:
        if worker is not None:
            stop(worker)  # SIGTERM: Celery's warm shutdown ends its pool children
        stop(redis_server)


# ---------------------------------------------------------------------------- report


def _celery_available() -> bool:
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        print("Celery is not installed: `pip install -e '.[bench]'` (baseline skipped)")
        return False
    if shutil.which("redis-server") is None:
        print("redis-server is not on PATH: `apt-get install redis-server` (baseline skipped)")
        return False
    return True


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs to submit (2000)")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="POSTs at once (50)")
    args = parser.parse_args(argv)
    count = args.runs
    set_in_flight(args.in_flight)

    ours = measure_engine(count)
    base = measure_celery(count) if _celery_available() else None

    def row(name: str, r: dict, stored: str) -> tuple:
        rate = count / r["elapsed"]
        p50, p99 = percentile(r["waits"], 50) * 1000, percentile(r["waits"], 99) * 1000
        return (name, f"{rate:.0f}", f"{p50:.1f} ms", f"{p99:.1f} ms", stored)

    ours_rate = count / ours["elapsed"]
    ours_p50 = percentile(ours["waits"], 50) * 1000
    rows = [row("engine (run API)", ours, f"{ours['stored']}/{count} in runs.db")]
    result = {
        "runs_per_s": ours_rate,
        "queue_to_start_p50_ms": ours_p50,
        "queue_to_start_p99_ms": percentile(ours["waits"], 99) * 1000,
        "stored_fraction": ours["stored"] / count,
    }
    if base is not None:
        base_rate = count / base["elapsed"]
        rows.append(row("Celery 5 + Redis (prefork)", base, "Redis, no persistence"))
        ratio = ours_rate / base_rate
        rows.append(("ratio", f"{ratio:.2f}x (target >= 2x)", "", "", ""))
        result.update({"celery_runs_per_s": base_rate, "runs_ratio": ratio})
    rows.append(("target", "", f"p50 <= 10 ms (engine: {ours_p50:.1f} ms)", "", ""))
    header = ("", "runs/s", "queue-to-start p50", "p99", "stored")
    title = f"runs: {count} trivial runs, {CORES} workers, {IN_FLIGHT} requests in flight"
    print(table(title, header, rows))
    print(f"statistics: mean engine wait {statistics.mean(ours['waits']) * 1000:.1f} ms")
    return result


if __name__ == "__main__":
    main()
