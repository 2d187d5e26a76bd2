"""Validate + compile specs of 10, 100 and 1,000 apps (3 routes, a webhook and a WebSocket each).

Baseline: its own growth. Targets: <= 2 ms per app at 1,000 apps; the 1,000-app time at
most 12x the 100-app time (linear growth).
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


def measure(apps: int, repeat: int) -> float:
    """Best-of-`repeat` seconds to validate and compile a spec of `apps` apps."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(spec_text(apps))
        (Path(folder) / "handlers.py").write_text(
            "def hello():\n    return {}\n\ndef item(id, n):\n    return {}\n"
        )
        (Path(folder) / "tasks.py").write_text("def work(**kw):\n    return kw\n")
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            compile_spec(load_spec(path, {"HOOK_SECRET": "x"}))
            best = min(best, time.perf_counter() - start)
        return best


def main() -> dict[str, float]:
    times = {n: measure(n, 3 if n < 1000 else 2) for n in SIZES}
    rows = [(n, f"{t * 1000:.0f} ms", f"{t / n * 1000:.2f} ms") for n, t in times.items()]
    growth = times[1000] / times[100]
    rows.append(("1000 vs 100", f"{growth:.1f}x", "target <= 12x"))
    print(table("compile: validate + compile", ("apps", "total", "per app"), rows))
    return {"per_app_ms_1000": times[1000] / 1000 * 1000, "growth_1000_vs_100": growth}


if __name__ == "__main__":
    main()
