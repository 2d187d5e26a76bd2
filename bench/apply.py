"""Cold `engine apply` of 1, 4 and 8 independent apps until all are healthy, then a no-op
re-apply.

Baselines, in the same run: the same generated modules started one after another with
plain uvicorn (each waited for), and a single uvicorn start (the floor). Targets:
apply(8) <= 2.5x apply(1); a no-op re-apply <= 0.5 s at any size.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, start_uvicorn, stop, table, wait_healthy

SIZES = (1, 4, 8)
HANDLERS = "def hello() -> dict:\n    return {'hello': 'world'}\n"


def write_project(folder: Path, apps: int) -> Path:
    lines = ["version: 1", "project: bench-apply", "apps:"]
    for i in range(apps):
        lines += [
            f"  app-{i}:",
            "    routes:",
            "      - {method: GET, path: /, handler: 'h:hello'}",
        ]
    (folder / "h.py").write_text(HANDLERS)
    spec = folder / "spec.yaml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def engine(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], cwd=cwd, check=True, capture_output=True
    )
    return time.perf_counter() - start


def measure_engine(apps: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_project(folder, apps)
        try:
            cold = engine("apply", "spec.yaml", cwd=folder)
            noop = engine("apply", "spec.yaml", cwd=folder)
        finally:
            engine("destroy", "spec.yaml", cwd=folder)
        return cold, noop


def measure_uvicorn(apps: int) -> float:
    """Build the modules, then start them one by one with plain uvicorn, each until healthy."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_project(folder, apps)
        engine("build", "spec.yaml", "-o", str(folder / "build"), cwd=folder)
        started = []
        start = time.perf_counter()
        try:
            for i in range(apps):
                port = free_port()
                env = {"PYTHONPATH": str(folder)}
                started.append(
                    start_uvicorn("_engine_app", folder / "build" / f"app-{i}", port, env)
                )
                wait_healthy(f"http://127.0.0.1:{port}/health")
            return time.perf_counter() - start
        finally:
            for process in started:
                stop(process)


def main() -> dict[str, float]:
    rows, results = [], {}
    floor = measure_uvicorn(1)
    for n in SIZES:
        cold, noop = measure_engine(n)
        sequential = measure_uvicorn(n)
        results[n] = cold
        rows.append(
            (
                n,
                f"{cold:.2f} s",
                f"{noop:.2f} s",
                f"{sequential:.2f} s",
                f"{cold / sequential:.2f}x",
            )
        )
    rows.append(("floor", "-", "-", f"{floor:.2f} s (one uvicorn start)", "-"))
    ratio = results[8] / results[1]
    rows.append(("apply(8)/apply(1)", f"{ratio:.2f}x", "target <= 2.5x", "", ""))
    header = ("apps", "engine apply (cold)", "no-op re-apply", "uvicorn one by one", "ratio")
    print(table("apply: cold start until healthy", header, rows))
    return {"apply8_over_apply1": ratio}


if __name__ == "__main__":
    main()
