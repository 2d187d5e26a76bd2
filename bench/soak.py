"""Soak: wrk against a GitHub webhook whose push event starts a run; nothing lost or doubled.

For `--seconds` (60 by default), wrk (2 threads, 50 connections) posts the real push payload
of tests/fixtures/github/push.default.json, validly signed (X-Hub-Signature-256), each
request with its own X-GitHub-Delivery id, to an applied project whose push event runs a
task returning its delivery id. A Lua `response()` hook counts the answers by status and
keeps the run id of each 2xx answer; `done()` prints them. After wrk ends, the queue is
waited for until empty, then the run store (`.engine/runs.db`) is checked:

* no 5xx answer;
* every 2xx answer has exactly one stored run, succeeded, whose output is its delivery id;
* no run lost or duplicated: distinct delivery ids == runs. Runs of requests wrk left in
  flight when its time ran out (their answers were never read) are counted separately.

There is no baseline: the figures are correctness counts; req/s is reported for scale.
Target: 0 5xx, 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import ROOT, table

SECRET = "bench-soak-secret"
PAYLOAD = ROOT / "tests" / "fixtures" / "github" / "push.default.json"
CONNECTIONS = 50
SPEC = """version: 1
project: bench-soak
secrets:
  github-secret: {env: GITHUB_SECRET}
tasks:
  record:
    handler: 'tasks:record'
    inputs: {delivery: {type: string}}
apps:
  hooks:
    webhooks:
      - path: /github-webhook
        secret: github-secret
        events:
          push: {run: {task: record, inputs: {delivery: '${{ delivery }}'}}}
"""
TASKS = "def record(delivery: str) -> str:\n    return delivery\n"

LUA = """-- Unique delivery ids per request; statuses and 2xx run ids counted per thread.
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(PAYLOAD_PATH, "rb"))
  body = f:read("*a")
  f:close()
  n, s2, s4, s5, other, runs = 0, 0, 0, 0, 0, {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = "push"
  wrk.headers["X-Hub-Signature-256"] = SIGNATURE
end

function request()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%s-%d-%d", PREFIX, tid, n)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, answer)
  if status >= 200 and status < 300 then
    s2 = s2 + 1
    local id = answer:match('"id"%s*:%s*"([^"]+)"')
    if id then runs[#runs + 1] = id end
  elseif status >= 400 and status < 500 then s4 = s4 + 1
  elseif status >= 500 then s5 = s5 + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local t2, t4, t5, tother = 0, 0, 0, 0
  local out = assert(io.open(RUNS_PATH, "w"))
  for _, thread in ipairs(threads) do
    t2 = t2 + thread:get("s2")
    t4 = t4 + thread:get("s4")
    t5 = t5 + thread:get("s5")
    tother = tother + thread:get("other")
    for _, id in ipairs(thread:get("runs")) do out:write(id, "\\n") end
  end
  out:close()
  io.write(string.format("STATUS 2xx=%d 4xx=%d 5xx=%d other=%d\\n", t2, t4, t5, tother))
end
"""


def lua_script(folder: Path, prefix: str) -> tuple[Path, Path]:
    digest = hmac.new(SECRET.encode(), PAYLOAD.read_bytes(), hashlib.sha256).hexdigest()
    signature = f"sha256={digest}"
    runs_path = folder / "answered-runs.txt"
    header = (
        f"PAYLOAD_PATH = {json.dumps(str(PAYLOAD))}\n"
        f"SIGNATURE = {json.dumps(signature)}\n"
        f"PREFIX = {json.dumps(prefix)}\n"
        f"RUNS_PATH = {json.dumps(str(runs_path))}\n"
    )
    script = folder / "soak.lua"
    script.write_text(header + LUA)
    return script, runs_path


def engine(*args: str, cwd: Path, env: dict | None = None) -> str:
    cli = [sys.executable, "-m", "engine.cli", *args]
    done = subprocess.run(cli, cwd=cwd, check=True, capture_output=True, text=True, env=env)
    return done.stdout


def wait_drained(folder: Path, timeout: float) -> float:
    """Poll the list API until no run is queued or running; the seconds it took."""
    info = json.loads((folder / ".engine" / "control-plane.json").read_text())
    headers = {"Authorization": f"Bearer {info['token']}"}
    start = time.perf_counter()
    with httpx.Client(base_url=info["url"], headers=headers, timeout=30) as client:
        while time.perf_counter() - start < timeout:
            busy = sum(
                len(client.get("/api/v1/runs", params={"status": s, "limit": 1}).json()["runs"])
                for s in ("queued", "running")
            )
            if not busy:
                return time.perf_counter() - start
            time.sleep(0.5)
    raise RuntimeError(f"runs still queued or running after {timeout} s")


def store_counts(db: Path, answered: list[str]) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        runs, deliveries = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(inputs, '$.delivery')) FROM runs"
        ).fetchone()
        not_ok = conn.execute(
            "SELECT count(*) FROM runs WHERE status != 'succeeded'"
            " OR outputs != json_quote(json_extract(inputs, '$.delivery'))"
        ).fetchone()[0]
        conn.execute("CREATE TEMP TABLE answered (id TEXT)")
        conn.executemany("INSERT INTO answered VALUES (?)", [(i,) for i in answered])
        matched = conn.execute(
            "SELECT count(*) FROM answered JOIN runs USING (id) WHERE runs.status = 'succeeded'"
        ).fetchone()[0]
    distinct_answered = len(set(answered))
    return {
        "runs": runs,
        "distinct_deliveries": deliveries,
        "not_succeeded": not_ok,
        "answered_with_run": matched,
        "answered_ids_repeated": len(answered) - distinct_answered,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long wrk runs (60)")
    args = parser.parse_args(argv)
    env = {**os.environ, "GITHUB_SECRET": SECRET}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "tasks.py").write_text(TASKS)
        engine("apply", "spec.yaml", cwd=folder, env=env)
        try:
            status = json.loads(engine("status", "--json", cwd=folder))
            url = status["apps"][0]["url"] + "/github-webhook"
            script, runs_path = lua_script(folder, secrets.token_hex(4))
            wrk = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{args.seconds}s", "--timeout", "10s"]
            out = subprocess.run(
                [*wrk, "-s", str(script), url], capture_output=True, text=True, check=True
            ).stdout
            drain = wait_drained(folder, timeout=max(600, 10 * args.seconds))
            answered = runs_path.read_text().split()
            counts = store_counts(folder / ".engine" / "runs.db", answered)
        finally:
            engine("destroy", "spec.yaml", cwd=folder)
    s2, s4, s5, other = map(
        int, re.search(r"STATUS 2xx=(\d+) 4xx=(\d+) 5xx=(\d+) other=(\d+)", out).groups()
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    errors = re.search(r"Socket errors:.*", out)
    lost = s2 - counts["answered_with_run"]
    duplicated = counts["runs"] - counts["distinct_deliveries"]
    unanswered = counts["runs"] - counts["answered_with_run"]
    ok = s5 == 0 and lost == 0 and duplicated == 0 and counts["not_succeeded"] == 0
    ok = ok and counts["answered_ids_repeated"] == 0 and 0 <= unanswered <= CONNECTIONS
    rows = [
        ("wrk answers", f"2xx {s2}, 4xx {s4}, 5xx {s5}, other {other}", "5xx = 0"),
        ("requests/s (wrk, whole soak)", f"{rps:.0f}", "-"),
        (
            "stored runs / distinct delivery ids",
            f"{counts['runs']} / {counts['distinct_deliveries']}",
            "equal",
        ),
        ("2xx answers without a succeeded run (lost)", lost, "0"),
        ("duplicated runs", duplicated, "0"),
        ("runs not succeeded or output != delivery", counts["not_succeeded"], "0"),
        ("runs of requests in flight at wrk's end", f"{unanswered} (<= {CONNECTIONS})", "-"),
        ("queue drained after wrk ended in", f"{drain:.1f} s", "-"),
        ("wrk socket errors", errors[0] if errors else "none", "-"),
        ("verdict", "PASS" if ok else "FAIL", ""),
    ]
    print(
        table(
            f"soak: {args.seconds} s of wrk -c{CONNECTIONS} on a run-starting GitHub webhook",
            ("", "measured", "target"),
            rows,
        )
    )
    return {
        "soak_2xx": s2,
        "soak_5xx": s5,
        "soak_lost": lost,
        "soak_duplicated": duplicated,
        "soak_rps": rps,
        "soak_drain_s": drain,
        "soak_ok": float(ok),
    }


if __name__ == "__main__":
    main()
