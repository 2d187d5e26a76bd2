"""Requests/s and p99 of a generated GitHub webhook route under wrk (50 connections).

Each request carries a valid signature over a real payload (tests/fixtures/github) for an
event the route does not listen to, so it is checked, parsed and answered 202 ignored.
Baseline, in the same run: the same endpoint hand-written in FastAPI
(bench/baselines/webhook_app.py). The two are measured in turn, three rounds each, and
the medians compared. Targets: >= 0.95x its requests/s; p99 <= 1.1x.
"""

from __future__ import annotations

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
DURATION = "10s"
ROUNDS = 3


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


def main() -> dict[str, float]:
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
        ours_runs, base_runs = [], []
        for _ in range(ROUNDS):  # alternate, so a change in load hits both sides alike
            ours_runs.append(
                serve_and_measure("_engine_app", folder / "build" / "hooks", env, script)
            )
            base_runs.append(
                serve_and_measure("webhook_app", ROOT / "bench" / "baselines", env, script)
            )
    ours = (median(r for r, _ in ours_runs), median(p for _, p in ours_runs))
    base = (median(r for r, _ in base_runs), median(p for _, p in base_runs))
    rows = [
        ("engine (generated)", f"{ours[0]:.0f}", f"{ours[1]:.1f} ms"),
        ("hand-written FastAPI", f"{base[0]:.0f}", f"{base[1]:.1f} ms"),
        (
            "ratio",
            f"{ours[0] / base[0]:.2f}x (target >= 0.95x)",
            f"{ours[1] / base[1]:.2f}x (target <= 1.1x)",
        ),
    ]
    print(
        table(
            "webhook: GitHub signature check, ignored event, wrk -c50", ("", "req/s", "p99"), rows
        )
    )
    return {"webhook_rps_ratio": ours[0] / base[0], "webhook_p99_ratio": ours[1] / base[1]}


if __name__ == "__main__":
    main()
