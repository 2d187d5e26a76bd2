"""Cold `engine apply` of 1, 4 and 8 independent apps until all are healthy, then a no-op
re-apply.

Baselines, in the same run: the same generated modules started one after another with
plain uvicorn (each waited for), and a single uvicorn start (the floor). One uvicorn
start, apply(1) and apply(8) are measured in turn over `ROUNDS` rounds, so that a change
in the machine's load hits all alike; the ratios are the medians of each round's, with
their spread. Targets: cold apply(1) <= 1.5x one uvicorn start; apply(8) <= 2.5x
apply(1); a no-op re-apply <= 0.5 s at any size.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, start_uvicorn, stop, table, wait_healthy

SIZES = (1, 4, 8)
ROUNDS = 3
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
    floors, ones, eights, noops = [], [], [], {}
    for _ in range(ROUNDS):  # alternate, so a change in load hits every side alike
        floors.append(measure_uvicorn(1))
        cold, noops[1] = measure_engine(1)
        ones.append(cold)
        cold, noops[8] = measure_engine(8)
        eights.append(cold)
    cold4, noops[4] = measure_engine(4)
    colds = {1: median(ones), 4: cold4, 8: median(eights)}
    rows = []
    for n in SIZES:
        sequential = median(floors) if n == 1 else measure_uvicorn(n)
        cold = colds[n]
        rows.append(
            (
                n,
                f"{cold:.2f} s",
                f"{noops[n]:.2f} s",
                f"{sequential:.2f} s",
                f"{cold / sequential:.2f}x",
            )
        )
    cold_ratios = [a / b for a, b in zip(ones, floors, strict=True)]
    growth = [b / a for a, b in zip(ones, eights, strict=True)]
    rows.append(
        (
            "floor",
            "-",
            "-",
            f"{median(floors):.2f} s ({min(floors):.2f}-{max(floors):.2f}), one uvicorn start",
            "-",
        )
    )
    rows.append(
        (
            "apply(1) / uvicorn",
            f"{median(cold_ratios):.2f}x ({min(cold_ratios):.2f}-{max(cold_ratios):.2f})",
            "target <= 1.5x",
            "",
            "",
        )
    )
    rows.append(
        (
            "apply(8)/apply(1)",
            f"{median(growth):.2f}x ({min(growth):.2f}-{max(growth):.2f})",
            "target <= 2.5x",
            "",
            "",
        )
    )
    header = ("apps", "engine apply (cold)", "no-op re-apply", "uvicorn one by one", "ratio")
    title = (
        f"apply: cold start until healthy, medians of {ROUNDS} alternating rounds (1 and 8 apps)"
    )
    print(table(title, header, rows))
    return {
        "apply8_over_apply1": median(growth),
        "apply8_over_apply1_lo": min(growth),
        "apply8_over_apply1_hi": max(growth),
        "apply1_over_uvicorn": median(cold_ratios),
        "apply1_over_uvicorn_lo": min(cold_ratios),
        "apply1_over_uvicorn_hi": max(cold_ratios),
        "apply1_s": median(ones),
        "uvicorn_s": median(floors),
    }


if __name__ == "__main__":
    main()
