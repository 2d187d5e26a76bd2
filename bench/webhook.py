"""Requests/s and p99 of a generated GitHub webhook route under wrk (50 connections).

Each request carries a valid signature over a real payload (tests/fixtures/github) for an
event the route does not listen to, so it is checked, parsed and answered 202 ignored.
Baselines, in the same run and under the same uvicorn: the same endpoint hand-written in
FastAPI (bench/baselines/webhook_app.py), and the limit, the same work as a bare ASGI
callable (bench/baselines/webhook_asgi.py). The three are measured in turn, round after
round (`--rounds`, 5), so that a change in the machine's load hits all alike; medians are
compared and each figure's spread (lowest-highest over the rounds) printed. Targets: >= 1.0x
FastAPI's requests/s and p99 <= 1.0x; >= 0.5x the limit's requests/s.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, free_port, start_uvicorn, stop, table, wait_healthy

SECRET = "bench-webhook-secret"
PAYLOAD = ROOT / "tests" / "fixtures" / "github" / "star.created.json"
SPEC = """version: 1
project: bench-webhook
secrets:
  github-secret: {env: GITHUB_SECRET}
tasks:
  deploy: {handler: 'tasks:deploy'}
apps:
  hooks:
    webhooks:
      - path: /github-webhook
        secret: github-secret
        events: {push: {run: {task: deploy}}}
"""
DURATION = "8s"
ROUNDS = 5
SERVERS = (  # (row, module, folder: None for the generated app's)
    ("engine (generated)", "_engine_app", None),
    ("hand-written FastAPI", "webhook_app", ROOT / "bench" / "baselines"),
    ("bare ASGI (the limit)", "webhook_asgi", ROOT / "bench" / "baselines"),
)


def lua_script(folder: Path) -> Path:
    body = PAYLOAD.read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    script = folder / "post.lua"
    script.write_text(
        f'local f = io.open("{PAYLOAD}", "rb")\n'
        "wrk.body = f:read('*a')\nf:close()\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["X-GitHub-Event"] = "star"\n'
        f'wrk.headers["X-Hub-Signature-256"] = "{signature}"\n'
    )
    return script


def wrk(url: str, script: Path) -> tuple[float, float]:
    """(requests/s, p99 in ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{DURATION}", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99


def serve_and_measure(module: str, app_dir: Path, env: dict, script: Path) -> tuple[float, float]:
    port = free_port()
    process = start_uvicorn(module, app_dir, port, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        wrk(f"http://127.0.0.1:{port}/github-webhook", script)  # warm-up, not counted
        return wrk(f"http://127.0.0.1:{port}/github-webhook", script)
    finally:
        stop(process)


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per server")
    rounds = parser.parse_args(argv).rounds
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "tasks.py").write_text("def deploy() -> dict:\n    return {}\n")
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "build", "spec.yaml", "-o", "build"],
            cwd=folder,
            check=True,
            capture_output=True,
            env={"GITHUB_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        )
        env = {
            "GITHUB_SECRET": SECRET,
            "PYTHONPATH": str(folder),
            "ENGINE_DATA_DIR": name,
            # The push action needs a run API to exist; the ignored event never calls it.
            "ENGINE_API_URL": "http://127.0.0.1:9",
            "ENGINE_API_TOKEN": "unused",
        }
        script = lua_script(folder)
        runs: dict[str, list[tuple[float, float]]] = {row: [] for row, _, _ in SERVERS}
        for _ in range(rounds):  # alternate, so a change in load hits every side alike
            for row, module, app_dir in SERVERS:
                where = app_dir or folder / "build" / "hooks"
                runs[row].append(serve_and_measure(module, where, env, script))
    rps = {row: [r for r, _ in results] for row, results in runs.items()}
    p99 = {row: [p for _, p in results] for row, results in runs.items()}
    ours, fastapi, limit = (row for row, _, _ in SERVERS)
    # Ratios per round (the servers of one round saw the same load), then their median.
    rps_ratio = [a / b for a, b in zip(rps[ours], rps[fastapi], strict=True)]
    p99_ratio = [a / b for a, b in zip(p99[ours], p99[fastapi], strict=True)]
    limit_ratio = [a / b for a, b in zip(rps[ours], rps[limit], strict=True)]
    rows = [(row, _spread(rps[row], ".0f"), _spread(p99[row], ".1f") + " ms") for row in runs]
    rows += [
        (
            "engine / FastAPI",
            _spread(rps_ratio, ".2f") + "x (target >= 1.0x)",
            _spread(p99_ratio, ".2f") + "x (target <= 1.0x)",
        ),
        ("engine / limit", _spread(limit_ratio, ".2f") + "x (aim >= 0.5x)", "-"),
    ]
    title = (
        f"webhook: GitHub signature check, ignored event, wrk -c50 {DURATION}, "
        f"median (lowest-highest) of {rounds} alternating rounds"
    )
    print(table(title, ("", "req/s", "p99"), rows))
    return {
        "webhook_rps_ratio": median(rps_ratio),
        "webhook_p99_ratio": median(p99_ratio),
        "webhook_limit_ratio": median(limit_ratio),
        "webhook_rps_ratio_lo": min(rps_ratio),
        "webhook_rps_ratio_hi": max(rps_ratio),
        "webhook_p99_ratio_lo": min(p99_ratio),
        "webhook_p99_ratio_hi": max(p99_ratio),
        "webhook_limit_ratio_lo": min(limit_ratio),
        "webhook_limit_ratio_hi": max(limit_ratio),
    }


if __name__ == "__main__":
    main()
