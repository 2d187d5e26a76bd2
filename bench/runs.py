"""End-to-end runs/s of 2,000 trivial runs, and their queue-to-start latency p50/p99.

engine: an applied project whose task returns its input, `concurrency:` = the core count;
wrk POSTs 2,000 runs to the run API over 50 connections (bench/runs.lua; a Python client
would saturate before the server does), then the list API is polled until none is queued
or running. Every run in the store file (`.engine/runs.db`) must have succeeded with its
output equal to its input, and there must be one per answered request. Queue-to-start is
`started_at - created_at` of each run.

Baseline, in the same run: Celery 5 with Redis (a redis-server started here on 127.0.0.1,
no persistence), a prefork worker with the same number of processes and the same task
(bench/baselines/celery_app.py); 2,000 `delay()` calls, then every result is waited for.
Queue-to-start is `time.time()` at task start minus a timestamp taken before `delay()`.

engine on PostgreSQL, in the same run: the same runs through the run API of a control plane
whose store is PostgreSQL 15 (Debian's, started here with its defaults: fsync and
synchronous_commit on, so every answered run is flushed to disk first); the real runner,
local workers and run API, in one process (tests/runs/run_api_process.py). Runs are read
back from the database itself.

The limit, in the same run: a hand-written FastAPI route that only commits one SQLite row
per request, as durable as the run store (bench/baselines/commit_app.py), POSTed to by the
same wrk script; its runs/s is the first row's commit to the last one's.

Targets: >= 5x Celery's runs/s with every run durably stored; dispatch p50 <= 1 ms; on
PostgreSQL, >= 1x Celery's runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
from common import ROOT, free_port, start_uvicorn, stop, table, wait_healthy

sys.path.insert(0, str(ROOT))  # tests.postgres and tests.runs.run_api_process

CORES = os.cpu_count() or 1
IN_FLIGHT = 50
WARMUP = 20
DISPATCH_SAMPLES = 200
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


async def _drive_engine(url: str, token: str, count: int, db: StoreReader) -> dict:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as client:
        await _submit_all(client, -WARMUP, WARMUP)  # warm-up: connections, workers
        await _drained(client)
        dispatch = await _dispatch_latency(client, DISPATCH_SAMPLES)
        before = db.max_seq()
        answered = _wrk_submit(url, token, count)
        await _drained(client)
    runs = db.runs_after(before)
    # wrk 4.1 sleeps its whole -d even when every thread has stopped, so the time is taken
    # from the store: the first run's creation to the last one's end.
    elapsed = max(r["finished_at"] for r in runs) - min(r["created_at"] for r in runs)
    bad = [r for r in runs if r["status"] != "succeeded" or r["outputs"] != r["inputs"]]
    if bad:
        raise RuntimeError(f"{len(bad)} runs did not succeed with their input, e.g. {bad[0]}")
    if len(runs) < answered:
        raise RuntimeError(f"{answered} requests were answered 201 but only {len(runs)} stored")
    waits = [r["started_at"] - r["created_at"] for r in runs]
    return {
        "elapsed": elapsed,
        "waits": waits,
        "count": len(runs),
        "stored": len(runs),
        "answered": answered,
        "dispatch": dispatch,
    }


async def _dispatch_latency(client: httpx.AsyncClient, samples: int) -> list[float]:
    """Queue-to-start of runs submitted one at a time, each to an idle worker: the cost of
    dispatch itself, which a flood of 2,000 runs onto two workers hides under queueing."""
    waits = []
    for i in range(samples):
        response = await client.post("/api/v1/runs", json={"task": "echo", "inputs": {"i": i}})
        run_id = response.raise_for_status().json()["id"]
        run = (await client.get(f"/api/v1/runs/{run_id}/wait", params={"timeout": 10})).json()
        waits.append(_ts(run["started_at"]) - _ts(run["created_at"]))
    return waits


def _wrk_submit(url: str, token: str, count: int) -> int:
    """POST `count` runs with wrk (2 threads, IN_FLIGHT connections); return the 2xx count."""
    env = {**os.environ, "ENGINE_BENCH_TOKEN": token, "ENGINE_BENCH_SHARE": str(count // 2)}
    script = Path(__file__).with_name("runs.lua")
    argv = ["wrk", "-t2", f"-c{IN_FLIGHT}", "-d30s", "-s", str(script), url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error answers:\n{out}")
    return int(re.search(r"(\d+) requests in", out)[1])


_COLUMNS = ("status", "inputs", "outputs", "created_at", "started_at", "finished_at")


class StoreReader:
    """Reads runs from a store's SQLite file itself, not through engine."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def max_seq(self) -> int:
        return self._rows("SELECT coalesce(max(seq), 0) FROM runs", ())[0][0]

    def runs_after(self, seq: int) -> list[dict]:
        """The runs stored after `seq`."""
        rows = self._rows(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE seq > ?", (seq,))
        runs = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        for run in runs:
            run["inputs"] = json.loads(run["inputs"])
            run["outputs"] = json.loads(run["outputs"]) if run["outputs"] else None
        return runs

    def _rows(self, sql: str, args: tuple) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, args).fetchall()


class PostgresReader(StoreReader):
    """Reads runs from a PostgreSQL store's database itself."""

    def __init__(self, url: str, password: str) -> None:
        self.url, self.password = url, password

    def runs_after(self, seq: int) -> list[dict]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE seq > %s"
        return [dict(zip(_COLUMNS, row, strict=True)) for row in self._rows(sql, (seq,))]

    def _rows(self, sql: str, args: tuple) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, password=self.password) as conn:
            return conn.execute(sql, args).fetchall()


def measure_engine(count: int) -> dict:
    cli = [sys.executable, "-m", "engine.cli"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "tasks.py").write_text(TASKS)
        subprocess.run([*cli, "apply", "spec.yaml"], cwd=folder, check=True, capture_output=True)
        try:
            info = json.loads((folder / ".engine" / "control-plane.json").read_text())
            db = StoreReader(folder / ".engine" / "runs.db")
            return asyncio.run(_drive_engine(info["url"], info["token"], count, db))
        finally:
            subprocess.run([*cli, "destroy", "spec.yaml"], cwd=folder, capture_output=True)


def measure_postgres(count: int) -> dict:
    from tests.postgres import PASSWORD, postgres_server
    from tests.runs.run_api_process import RunAPIProcess

    token = "bench-token"
    task = {"name": "echo", "handler": "tasks:echo", "concurrency": CORES,
            "inputs": {"i": {"type": "integer"}}}  # fmt: skip
    with tempfile.TemporaryDirectory() as name, postgres_server(fsync=True) as server:
        folder = Path(name)
        (folder / "tasks.py").write_text(TASKS)
        url = server.new_database()
        config = {"store": url, "project": str(folder), "token": token, "tasks": [task]}
        with RunAPIProcess(folder / "state", config, PASSWORD) as api:
            return asyncio.run(_drive_engine(api.url, token, count, PostgresReader(url, PASSWORD)))


def _postgres_available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("psycopg is not installed: `pip install -e '.[postgres]'` (PostgreSQL row skipped)")
        return False
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        print("PostgreSQL is not installed: `apt-get install postgresql` (its row skipped)")
        return False
    return True


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


# ---------------------------------------------------------------------------- the limit


def measure_commit_limit(count: int) -> dict:
    """runs/s of bench/baselines/commit_app.py: one committed row per POST, nothing else."""
    token = "bench-token"
    with tempfile.TemporaryDirectory() as name:
        db = Path(name) / "runs.db"
        port = free_port()
        env = {"COMMIT_DB": str(db), "COMMIT_TOKEN": token}
        server = start_uvicorn("commit_app", ROOT / "bench" / "baselines", port, env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(f"{url}/health")
            _wrk_submit(url, token, WARMUP * 10)  # warm-up: connections, the file
            with sqlite3.connect(db) as conn:
                before = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
            answered = _wrk_submit(url, token, count)
            with sqlite3.connect(db) as conn:
                first, last, stored = conn.execute(
                    "SELECT min(created_at), max(created_at), count(*) FROM runs WHERE seq > ?",
                    (before,),
                ).fetchone()
        finally:
            stop(server)
    if stored < answered:
        raise RuntimeError(f"{answered} requests were answered 201 but only {stored} stored")
    return {"elapsed": last - first, "count": stored}


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
    limit = measure_commit_limit(count)
    pg = measure_postgres(count) if _postgres_available() else None
    base = measure_celery(count) if _celery_available() else None

    def row(name: str, r: dict, stored: str) -> tuple:
        rate = r.get("count", count) / r["elapsed"]
        p50, p99 = percentile(r["waits"], 50) * 1000, percentile(r["waits"], 99) * 1000
        return (name, f"{rate:.0f}", f"{p50:.1f} ms", f"{p99:.1f} ms", stored)

    ours_rate = ours["count"] / ours["elapsed"]
    ours_p50 = percentile(ours["waits"], 50) * 1000
    stored = f"{ours['stored']} runs, all answered requests, in runs.db"
    rows = [row("engine (run API, driven by wrk)", ours, stored)]
    limit_rate = limit["count"] / limit["elapsed"]
    rows.append(
        ("limit: FastAPI route, one SQLite commit per request", f"{limit_rate:.0f}", "-", "-",
         f"{limit['count']} rows in SQLite (WAL, synchronous=NORMAL)")
    )  # fmt: skip
    rows.append(("engine / limit", f"{ours_rate / limit_rate:.2f}x", "", "", ""))
    result = {
        "runs_per_s": ours_rate,
        "queue_to_start_p50_ms": ours_p50,
        "queue_to_start_p99_ms": percentile(ours["waits"], 99) * 1000,
        "stored_fraction": min(1.0, ours["stored"] / ours["answered"]),
        "limit_runs_per_s": limit_rate,
        "limit_ratio": ours_rate / limit_rate,
    }
    if pg is not None:
        pg_stored = f"{pg['stored']} runs, all answered requests, in PostgreSQL (fsync on)"
        rows.append(row("engine on PostgreSQL (same)", pg, pg_stored))
        result["postgres_runs_per_s"] = pg["count"] / pg["elapsed"]
        result["postgres_stored_fraction"] = min(1.0, pg["stored"] / pg["answered"])
        result["postgres_to_sqlite"] = result["postgres_runs_per_s"] / ours_rate
    if base is not None:
        base_rate = count / base["elapsed"]
        rows.append(row("Celery 5 + Redis (prefork)", base, "Redis, no persistence"))
        ratio = ours_rate / base_rate
        rows.append(("ratio", f"{ratio:.2f}x (target >= 5x)", "", "", ""))
        result.update({"celery_runs_per_s": base_rate, "runs_ratio": ratio})
        if pg is not None:
            pg_ratio = result["postgres_runs_per_s"] / base_rate
            rows.append(("ratio, PostgreSQL", f"{pg_ratio:.2f}x (target >= 1x)", "", "", ""))
            result["postgres_runs_ratio"] = pg_ratio
    if pg is not None:
        to_sqlite = result["postgres_to_sqlite"]
        rows.append(("ratio, PostgreSQL / SQLite", f"{to_sqlite:.2f}x", "", "", ""))
    d50, d99 = percentile(ours["dispatch"], 50) * 1000, percentile(ours["dispatch"], 99) * 1000
    rows.append(("engine, one run at a time", "", f"{d50:.1f} ms", f"{d99:.1f} ms", "dispatch"))
    rows.append(("target", "", f"dispatch p50 <= 1 ms (engine: {d50:.1f} ms)", "", ""))
    result["dispatch_p50_ms"] = d50
    header = ("", "runs/s", "queue-to-start p50", "p99", "stored")
    title = f"runs: {count} trivial runs, {CORES} workers, {IN_FLIGHT} requests in flight"
    print(table(title, header, rows))
    print(f"statistics: mean engine wait {statistics.mean(ours['waits']) * 1000:.1f} ms")
    return result


if __name__ == "__main__":
    main()
