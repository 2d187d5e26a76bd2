"""Validate + compile specs of 10, 100 and 1,000 apps (3 routes, a webhook and a WebSocket each).

Baseline: its own growth. Targets: <= 1.0 ms per app at 1,000 apps; the 1,000-app time at
most 10.5x the 100-app time (linear growth). Both the CPU time of this process and the
wall-clock time are measured, best of several runs, with the spread; the key figures are
CPU time, which other work on a shared machine moves far less (a 1 s run is preempted
more often than a 0.1 s one, which inflates the wall-clock growth).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table

from engine.compiler import compile_spec
from engine.load import load_spec

SIZES = (10, 100, 1000)


def spec_text(apps: int) -> str:
    lines = ["version: 1", "project: bench", "secrets:", "  hook: {env: HOOK_SECRET}"]
    lines += ["tasks:", "  work: {handler: 'tasks:work'}", "apps:"]
    for i in range(apps):
        lines += [
            f"  app-{i}:",
            "    routes:",
            "      - {method: GET, path: /, handler: 'handlers:hello'}",
            "      - method: GET",
            "        path: '/items/{id}'",
            "        query: {n: {type: integer}}",
            "        handler: 'handlers:item'",
            "      - {method: POST, path: /run, run: {task: work, inputs: '${{ body }}'}}",
            "    webhooks:",
            "      - path: /hook",
            "        secret: hook",
            "        events: {push: {run: {task: work}}}",
            "    websockets:",
            "      - {path: /echo, pattern: echo}",
        ]
    return "\n".join(lines) + "\n"


def measure(apps: int, repeat: int) -> tuple[list[float], list[float]]:
    """(CPU seconds, wall seconds) of each of `repeat` validations and compilations of a spec
    of `apps` apps."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(spec_text(apps))
        (Path(folder) / "handlers.py").write_text(
            "def hello():\n    return {}\n\ndef item(id, n):\n    return {}\n"
        )
        (Path(folder) / "tasks.py").write_text("def work(**kw):\n    return kw\n")
        cpu, wall = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            compile_spec(load_spec(path, {"HOOK_SECRET": "x"}))
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        return cpu, wall


def _ms(seconds: list[float], apps: int) -> str:
    """Best per-app milliseconds, and the spread over the runs."""
    per = [s / apps * 1000 for s in seconds]
    return f"{min(per):.2f} ms ({min(per):.2f}-{max(per):.2f})"


def main() -> dict[str, float]:
    runs = {n: measure(n, 5 if n < 1000 else 3) for n in SIZES}
    rows = [
        (n, f"{min(cpu) * 1000:.0f} ms", _ms(cpu, n), f"{min(wall) * 1000:.0f} ms", _ms(wall, n))
        for n, (cpu, wall) in runs.items()
    ]
    growth_cpu = min(runs[1000][0]) / min(runs[100][0])
    growth_wall = min(runs[1000][1]) / min(runs[100][1])
    rows.append(("1000 vs 100", f"{growth_cpu:.1f}x", "target <= 10.5x", f"{growth_wall:.1f}x", ""))
    header = ("apps", "CPU (best)", "CPU per app (spread)", "wall (best)", "wall per app (spread)")
    print(table("compile: validate + compile, best of 5 (3 at 1,000 apps)", header, rows))
    return {
        "per_app_ms_1000": min(runs[1000][0]) / 1000 * 1000,
        "growth_1000_vs_100": growth_cpu,
        "wall_per_app_ms_1000": min(runs[1000][1]) / 1000 * 1000,
        "wall_growth_1000_vs_100": growth_wall,
    }


if __name__ == "__main__":
    main()
