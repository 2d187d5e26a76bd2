"""Idle resident memory (RSS) of a generated app and of the control plane.

Baseline, in the same run: a hand-written FastAPI app with the same route
(bench/baselines/hello_app.py). Targets: the generated app <= 1.05x; the control plane,
idle after applying the app, <= 1.2x.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, free_port, start_uvicorn, stop, table, wait_healthy

SPEC = """version: 1
project: bench-memory
apps:
  hello:
    routes:
      - {method: GET, path: /, handler: 'h:hello'}
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def idle_rss(module: str, app_dir: Path, env: dict) -> float:
    port = free_port()
    process = start_uvicorn(module, app_dir, port, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        time.sleep(1.0)
        return rss_mib(process.pid)
    finally:
        stop(process)


def control_plane_rss(folder: Path) -> float:
    cli = [sys.executable, "-m", "engine.cli"]
    subprocess.run([*cli, "apply", "spec.yaml"], cwd=folder, check=True, capture_output=True)
    try:
        info = json.loads((folder / ".engine" / "control-plane.json").read_text())
        time.sleep(1.0)
        return rss_mib(info["pid"])
    finally:
        subprocess.run([*cli, "destroy", "spec.yaml"], cwd=folder, check=True, capture_output=True)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "h.py").write_text("def hello() -> dict:\n    return {'hello': 'world'}\n")
        cli = [sys.executable, "-m", "engine.cli", "build", "spec.yaml", "-o", "build"]
        subprocess.run(cli, cwd=folder, check=True, capture_output=True)
        env = {"PYTHONPATH": str(folder)}
        ours = idle_rss("_engine_app", folder / "build" / "hello", env)
        base = idle_rss("hello_app", ROOT / "bench" / "baselines", env)
        plane = control_plane_rss(folder)
    rows = [
        ("generated app", f"{ours:.1f} MiB"),
        ("hand-written FastAPI app", f"{base:.1f} MiB"),
        ("ratio", f"{ours / base:.2f}x (target <= 1.05x)"),
        ("control plane", f"{plane:.1f} MiB ({plane / base:.2f}x the hand-written app; <= 1.2x)"),
    ]
    print(table("memory: idle RSS", ("process", "RSS"), rows))
    return {"memory_ratio": ours / base, "control_plane_ratio": plane / base}


if __name__ == "__main__":
    main()
