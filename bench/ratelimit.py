"""Requests/s and p99 of a generated route with rate limits, against the same route without.

Both apps are generated from the same spec, the limited one with an app-wide and a route
limit (`by: client`) high enough never to refuse, so every request pays for two counts and
nothing else differs. wrk -c50, three alternating rounds per side, medians compared.
Target: >= 0.9x the unlimited route's requests/s; p99 <= 1.15x.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, start_uvicorn, stop, table, wait_healthy

SPEC = """version: 1
project: bench-limits
apps:
  plain:
    routes:
      - {method: GET, path: /items, respond: {json: {items: [1, 2, 3]}}}
  limited:
    rate_limit: {requests: 1000000000, per: 1m, by: client}
    routes:
      - method: GET
        path: /items
        respond: {json: {items: [1, 2, 3]}}
        rate_limit: {requests: 1000000000, per: 1m, by: client}
"""
DURATION = "5s"
ROUNDS = 3


def wrk(url: str) -> tuple[float, float]:
    """(requests/s, p99 in ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{DURATION}", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def measure(app_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    port = free_port()
    process = start_uvicorn("_engine_app", app_dir, port, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        wrk(f"http://127.0.0.1:{port}/items")  # warm-up, not counted
        return wrk(f"http://127.0.0.1:{port}/items")
    finally:
        stop(process)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "build", "spec.yaml", "-o", "build"],
            cwd=folder,
            check=True,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        env = {"PYTHONPATH": str(folder), "ENGINE_DATA_DIR": name}
        ours, base = [], []
        for _ in range(ROUNDS):  # alternate, so a change in load hits both sides alike
            ours.append(measure(folder / "build" / "limited", env))
            base.append(measure(folder / "build" / "plain", env))
    limited = (median(r for r, _ in ours), median(p for _, p in ours))
    plain = (median(r for r, _ in base), median(p for _, p in base))
    rows = [
        ("rate-limited (app + route)", f"{limited[0]:.0f}", f"{limited[1]:.1f} ms"),
        ("no limit", f"{plain[0]:.0f}", f"{plain[1]:.1f} ms"),
        (
            "ratio",
            f"{limited[0] / plain[0]:.2f}x (target >= 0.9x)",
            f"{limited[1] / plain[1]:.2f}x (target <= 1.15x)",
        ),
    ]
    title = "rate limits: a respond route, wrk -c50"
    print(table(title, ("", "req/s", "p99"), rows))
    return {"limits_rps_ratio": limited[0] / plain[0], "limits_p99_ratio": limited[1] / plain[1]}


if __name__ == "__main__":
    main()
