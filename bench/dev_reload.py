"""From saving a handler to the new version answering, under `engine dev`, for one app.

`engine dev` runs a one-app project; each round rewrites the handler's module with a new
answer and polls the app's URL (which stays the same) until it gives the new answer.
Baseline, in the same run: the same handler in a hand-written FastAPI app under
`uvicorn --reload` (what `fastapi dev` runs), timed the same way. Medians of `--rounds`
saves each. Target: engine <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, stop, table, wait_healthy

SPEC = """version: 1
project: bench-dev
apps:
  hello:
    routes:
      - {method: GET, path: /, handler: 'handlers:hello'}
"""
BASELINE = """from fastapi import FastAPI

from handlers import hello

app = FastAPI()
app.add_api_route("/", hello, methods=["GET"])
"""
TARGET = 1.5


def handler(n: int) -> str:
    return f"def hello() -> dict:\n    return {{'version': {n}}}\n"


def time_save(folder: Path, url: str, n: int, timeout: float = 30.0) -> float:
    """Write version `n` of the handler; seconds until `url` answers it."""
    start = time.perf_counter()
    (folder / "handlers.py").write_text(handler(n))
    with httpx.Client(timeout=2, trust_env=False) as client:
        while time.perf_counter() - start < timeout:
            try:
                if client.get(url).json() == {"version": n}:
                    return time.perf_counter() - start
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.01)
    raise RuntimeError(f"version {n} did not answer within {timeout} s")


def measure_engine(rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "handlers.py").write_text(handler(0))
        dev = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "dev", "spec.yaml"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert dev.stdout is not None
            for line in dev.stdout:  # the first apply is done once it watches
                if line.startswith("watching"):
                    break
            status = subprocess.run(
                [sys.executable, "-m", "engine.cli", "status", "--json"],
                cwd=folder,
                check=True,
                capture_output=True,
                text=True,
            )
            url = json.loads(status.stdout)["apps"][0]["url"]
            times = []
            for n in range(1, rounds + 1):
                times.append(time_save(folder, url, n))
                time.sleep(0.5)  # let the old version finish stopping
            return times
        finally:
            dev.send_signal(signal.SIGINT)  # engine dev destroys what it started
            try:
                dev.wait(60)
            except subprocess.TimeoutExpired:
                stop(dev)
            if dev.stdout is not None:
                dev.stdout.close()


def measure_uvicorn(rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "main.py").write_text(BASELINE)
        (folder / "handlers.py").write_text(handler(0))
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "main:app", "--reload", "--app-dir", name]
        argv += ["--reload-dir", name, "--port", str(port), "--log-level", "warning"]
        process = subprocess.Popen(
            argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_healthy(url)
            times = []
            for n in range(1, rounds + 1):
                times.append(time_save(folder, url, n))
                time.sleep(0.5)
            return times
        finally:
            stop(process)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Saves timed per side.")
    args = parser.parse_args(argv)
    ours = median(measure_engine(args.rounds))
    theirs = median(measure_uvicorn(args.rounds))
    rows = [
        ["engine dev", f"{ours:.2f} s"],
        ["uvicorn --reload", f"{theirs:.2f} s"],
        ["ratio", f"{ours / theirs:.2f}x (target: engine <= {TARGET} s)"],
    ]
    print(table("dev reload: handler saved to new version answering", ["", "median"], rows))
    return {"dev_reload_s": ours, "dev_reload_baseline_s": theirs}


if __name__ == "__main__":
    main()
