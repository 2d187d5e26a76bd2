"""Run every benchmark, each in its own subprocess, and print one summary table.

    python bench/run_all.py            # full settings
    python bench/run_all.py --quick    # shorter settings where a benchmark has them
    python bench/run_all.py runs soak  # only these

A benchmark that fails is reported as such; the others still run. Each benchmark prints
its own table (engine and baseline measured in the same run) before the summary.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table

ORDER = ("compile", "apply", "webhook", "memory", "runs", "websocket", "soak", "dev_reload")
QUICK = {
    "webhook": ["--rounds", "3"],
    "runs": ["--runs", "500"],
    "websocket": ["--rounds", "10"],  # fewer gave 0.61x once: its spread is wide
    "soak": ["--seconds", "10"],
    "dev_reload": ["--rounds", "3"],
}
TAKES_ARGV = {"webhook", "runs", "websocket", "soak", "dev_reload"}
MARK = "RESULT "
TIMEOUT = 1800

Row = tuple[str, str, str, str, bool | None]  # met: None where a row has no target


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _spread(r: dict[str, float], key: str) -> str:
    """`key`'s ratio with the spread over its rounds (`<key>_lo`-`<key>_hi`), if given."""
    if f"{key}_lo" not in r:
        return _x(r[key])
    return f"{_x(r[key])} ({r[key + '_lo']:.2f}-{r[key + '_hi']:.2f})"


def summarise(name: str, r: dict[str, float]) -> list[Row]:
    """(key figure, baseline, ratio, target, met?) rows for one benchmark's result."""
    if name == "compile":
        met = r["per_app_ms_1000"] <= 1.0 and r["growth_1000_vs_100"] <= 10.5
        wall = ""
        if "wall_per_app_ms_1000" in r:
            wall = (
                f" (wall {r['wall_per_app_ms_1000']:.2f} ms, {r['wall_growth_1000_vs_100']:.1f}x)"
            )
        return [
            (
                f"{r['per_app_ms_1000']:.2f} ms/app CPU at 1,000 apps{wall}",
                "its own 100-app time",
                _x(r["growth_1000_vs_100"]),
                "<= 1.0 ms/app; <= 10.5x",
                met,
            )
        ]
    if name == "apply":
        ratio = r["apply8_over_apply1"]
        rows = []
        if "apply1_over_uvicorn" in r:
            cold = r["apply1_over_uvicorn"]
            rows.append(
                (
                    f"cold apply(1) {r['apply1_s']:.2f} s",
                    f"one uvicorn start {r['uvicorn_s']:.2f} s",
                    _spread(r, "apply1_over_uvicorn"),
                    "<= 1.5x",
                    cold <= 1.5,
                )
            )
        rows.append(
            ("apply(8) / apply(1)", "apply(1)", _spread(r, "apply8_over_apply1"), "<= 2.5x",
             ratio <= 2.5)
        )  # fmt: skip
        if "noop_max_s" in r:
            noop = r["noop_max_s"]
            rows.append(
                (f"no-op re-apply {noop:.2f} s (slowest)", "-", "-", "<= 0.5 s", noop <= 0.5)
            )
        return rows
    if name == "webhook":
        rps, p99 = r["webhook_rps_ratio"], r["webhook_p99_ratio"]
        rows = [
            ("req/s", "hand-written FastAPI", _spread(r, "webhook_rps_ratio"), ">= 1.0x", rps >= 1),
            ("p99", "hand-written FastAPI", _spread(r, "webhook_p99_ratio"), "<= 1.0x", p99 <= 1),
        ]
        if "webhook_limit_ratio" in r:
            limit = r["webhook_limit_ratio"]
            rows.append(
                ("req/s", "bare ASGI (the limit)", _spread(r, "webhook_limit_ratio"), ">= 0.5x",
                 limit >= 0.5)
            )  # fmt: skip
        return rows
    if name == "memory":
        ratio, plane = r["memory_ratio"], r["control_plane_ratio"]
        return [
            (
                "generated app idle RSS",
                "hand-written FastAPI",
                _x(ratio),
                "<= 1.05x",
                ratio <= 1.05,
            ),
            ("control plane idle RSS", "hand-written FastAPI", _x(plane), "<= 1.2x", plane <= 1.2),
        ]
    if name == "runs":
        rows: list[Row] = []
        stored = r["stored_fraction"] == 1.0
        if "runs_ratio" in r:
            rows.append(
                (
                    f"{r['runs_per_s']:.0f} runs/s",
                    f"Celery {r['celery_runs_per_s']:.0f} runs/s",
                    _x(r["runs_ratio"]),
                    ">= 5x, all stored",
                    r["runs_ratio"] >= 5 and stored,
                )
            )
        else:
            rows.append(
                (f"{r['runs_per_s']:.0f} runs/s", "Celery not installed", "-", ">= 5x", False)
            )
        if "limit_ratio" in r:
            rows.append(
                (
                    f"{r['runs_per_s']:.0f} runs/s",
                    f"limit: one SQLite commit per request, {r['limit_runs_per_s']:.0f}/s",
                    _x(r["limit_ratio"]),
                    "(the ceiling; no target)",
                    None,
                )
            )
        if "postgres_runs_ratio" in r:
            pg_stored = r["postgres_stored_fraction"] == 1.0
            rows.append(
                (
                    f"{r['postgres_runs_per_s']:.0f} runs/s on PostgreSQL",
                    f"Celery {r['celery_runs_per_s']:.0f} runs/s",
                    _x(r["postgres_runs_ratio"]),
                    ">= 1x, all stored",
                    r["postgres_runs_ratio"] >= 1 and pg_stored,
                )
            )
        p50 = r["dispatch_p50_ms"]
        rows.append((f"dispatch p50 {p50:.1f} ms", "-", "-", "<= 1 ms", p50 <= 1))
        return rows
    if name == "websocket":
        return [
            (
                f"{r['ws_engine_ms']:.1f} ms to 500 clients",
                f"websockets {r['ws_baseline_ms']:.1f} ms",
                _x(r["ws_speed_ratio"]),
                ">= 0.8x",
                r["ws_speed_ratio"] >= 0.8,
            )
        ]
    if name == "soak":
        figure = (
            f"{r['soak_2xx']:.0f} 2xx, {r['soak_5xx']:.0f} 5xx, "
            f"{r['soak_lost']:.0f} lost, {r['soak_duplicated']:.0f} duplicated"
        )
        return [(figure, "-", "-", "0 5xx, 0 lost, 0 duplicated", bool(r["soak_ok"]))]
    if name == "dev_reload":
        ours, theirs = r["dev_reload_s"], r["dev_reload_baseline_s"]
        return [
            (
                f"{ours:.2f} s save to answer",
                f"uvicorn --reload {theirs:.2f} s",
                _x(ours / theirs),
                "<= 1.5 s",
                ours <= 1.5,
            )
        ]
    raise ValueError(name)


def child(name: str, argv: list[str]) -> None:
    """Run one benchmark in this process and print its result dict on the last line."""
    module = importlib.import_module(name)
    main: Callable[..., dict[str, float]] = module.main
    result = main(argv) if name in TAKES_ARGV else main()
    print(MARK + json.dumps(result), flush=True)


def run_one(name: str, quick: bool) -> tuple[dict[str, float] | None, str, float]:
    """(result or None, error text, seconds) of one benchmark run in a subprocess."""
    argv = [sys.executable, __file__, "--child", name, *(QUICK.get(name, []) if quick else [])]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT} s", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    lines = done.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith(MARK)), flush=True)
    results = [line[len(MARK) :] for line in lines if line.startswith(MARK)]
    if done.returncode != 0 or not results:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(done.stderr[-3000:], file=sys.stderr)
        return None, f"failed (exit {done.returncode}): {tail}", elapsed
    result = json.loads(results[-1])
    if name == "apply":  # apply.py returns only its ratio; its table has the no-op times
        noops = re.findall(r"^\| \d+ \| [\d.]+ s \| ([\d.]+) s \|", done.stdout, re.M)
        if noops:
            result["noop_max_s"] = max(map(float, noops))
    return result, "", elapsed


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description="Run every benchmark; print a summary.")
    parser.add_argument("--quick", action="store_true", help="shorter settings where possible")
    parser.add_argument("only", nargs="*", help=f"benchmarks to run, of {', '.join(ORDER)}")
    args = parser.parse_args()
    unknown = set(args.only) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: choose from {', '.join(ORDER)}")
    names = [n for n in ORDER if not args.only or n in args.only]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    rows, results = [], {}
    for name in names:
        result, error, seconds = run_one(name, args.quick)
        results[name] = result
        if result is None:
            rows.append((name, error, "-", "-", "-", "no"))
            continue
        for figure, baseline, ratio, target, met in summarise(name, result):
            shown = "-" if met is None else "yes" if met else "**no**"
            rows.append((name, figure, baseline, ratio, target, shown))
        print(f"({name}: {seconds:.0f} s)\n", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    header = ("benchmark", "key figure", "baseline", "ratio", "target", "met?")
    print(table("summary", header, rows))
    return 0 if all(r is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
