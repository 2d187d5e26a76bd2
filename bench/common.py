"""Shared pieces of the benchmarks: the machine, free ports, a table printer."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    """One line naming what the figures were measured on."""
    return f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, timeout: float = 30.0) -> float:
    """Poll `url` until it answers 200; return the seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not become healthy in {timeout} s")


def start_uvicorn(
    module: str, app_dir: Path, port: int, env: dict | None = None
) -> subprocess.Popen:
    """Start `module:app` under uvicorn on 127.0.0.1:port, logging nowhere."""
    argv = [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(app_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so the output can be pasted into docs/performance.md."""
    lines = [f"### {title}", f"_{machine()}_", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
