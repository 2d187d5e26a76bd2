"""One message broadcast to 500 connected WebSocket clients: time until all received it.

engine: a generated app with `websockets: [{path: /broadcast, pattern: broadcast}]`,
served as the local backend serves it (`python -m engine.backends.local.serve` on a
socket handed over by fd: deadlines, the connection bound, engine's access log). Baseline:
a bare server written with the `websockets` library doing the same broadcast
(bench/baselines/ws_broadcast.py). Both run at once and their rounds alternate, so each
pair of rounds meets the same machine state.

Clients: this process, 500 `websockets` client connections (no compression) to each
server and one sender each; a round is timed from the send to the last of the 500
receives; `--rounds` (20) rounds per server after a warm-up, the median is reported with
the spread. Beside it, each server's own CPU time per round (its main thread's run time,
/proc/PID/schedstat), which moves far less with the machine's load than the latency does.
Target: engine >= 0.8x the baseline's speed (its median time at most 1.25x the baseline's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, free_port, stop, table, wait_healthy
from websockets.asyncio.client import ClientConnection, connect

SPEC = """version: 1
project: bench-websocket
apps:
  live:
    websockets:
      - {path: /broadcast, pattern: broadcast}
"""


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve_like_engine(build: Path, pythonpath: str) -> tuple[subprocess.Popen, int]:
    """Start the generated app the way the local backend does: serve.py on a listening
    socket passed by fd, health on a private port. Returns the process and its port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    health = free_port()
    argv = [sys.executable, "-m", "engine.backends.local.serve", "--fd", str(listener.fileno())]
    argv += ["--health-port", str(health), str(build), "_engine_app:app"]
    process = subprocess.Popen(
        argv,
        env={**os.environ, "PYTHONPATH": pythonpath},
        pass_fds=(listener.fileno(),),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port = listener.getsockname()[1]
    listener.close()  # the server holds its own copy
    wait_healthy(f"http://127.0.0.1:{health}/health")
    return process, port


def cpu_seconds(pid: int) -> float:
    """Time the main thread of `pid` has run on a CPU (ns precision, unlike /proc/PID/stat)."""
    with open(f"/proc/{pid}/schedstat") as stats:
        return int(stats.read().split()[0]) / 1e9


async def _open(url: str, count: int) -> list[ClientConnection]:
    clients: list[ClientConnection] = []
    for start in range(0, count, 50):  # in batches, so the accept backlog never overflows
        batch = range(start, min(count, start + 50))
        clients += await asyncio.gather(
            *(connect(url, compression=None, max_queue=None) for _ in batch)
        )
    return clients


async def _until(client: ClientConnection, tag: str) -> float:
    while await client.recv() != tag:
        pass
    return time.perf_counter()


class Side:
    """One server with its receivers and sender."""

    def __init__(self, pid: int, receivers: list[ClientConnection], sender: ClientConnection):
        self.pid = pid
        self.receivers = receivers
        self.sender = sender
        self.times: list[float] = []
        self.cpu: list[float] = []

    async def broadcast(self, tag: str, keep: bool) -> None:
        waiting = [asyncio.create_task(_until(c, tag)) for c in self.receivers]
        echo = asyncio.create_task(_until(self.sender, tag))
        await asyncio.sleep(0)  # every receiver is waiting before the send
        cpu = cpu_seconds(self.pid)
        start = time.perf_counter()
        await self.sender.send(tag)
        last = max(await asyncio.gather(*waiting))
        await echo
        if keep:
            self.times.append(last - start)
            self.cpu.append(cpu_seconds(self.pid) - cpu)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in [*self.receivers, self.sender]))


async def _rounds(servers: dict[str, tuple[int, str]], clients: int, rounds: int) -> list[Side]:
    sides = []
    for pid, url in servers.values():
        sides.append(Side(pid, await _open(url, clients), await connect(url, compression=None)))
    try:
        for n in range(rounds + 1):  # round 0 is a warm-up
            for side in sides if n % 2 else sides[::-1]:  # who goes first alternates
                await side.broadcast(f'{{"round": {n}, "text": "hello, everyone"}}', n > 0)
                await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(*(side.close() for side in sides))
    return sides


def _wait_socket(url: str, timeout: float = 30.0) -> None:
    async def attempt() -> None:
        async with connect(url, compression=None):
            pass

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(attempt())
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500, help="receiving clients (500)")
    parser.add_argument("--rounds", type=int, default=20, help="timed broadcasts each (20)")
    args = parser.parse_args(argv)
    raise_fd_limit(4 * args.clients + 256)  # inherited by the servers started below
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        cli = [sys.executable, "-m", "engine.cli", "build", "spec.yaml", "-o", "build"]
        subprocess.run(cli, cwd=folder, check=True, capture_output=True)
        try:
            app, app_port = serve_like_engine(folder / "build" / "live", name)
            processes.append(app)
            bare_port = free_port()
            script = str(ROOT / "bench" / "baselines" / "ws_broadcast.py")
            bare = subprocess.Popen(
                [sys.executable, script, str(bare_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            processes.append(bare)
            servers = {
                "engine": (app.pid, f"ws://127.0.0.1:{app_port}/broadcast"),
                "bare": (bare.pid, f"ws://127.0.0.1:{bare_port}/broadcast"),
            }
            for _, url in servers.values():
                _wait_socket(url)
            ours, base = asyncio.run(_rounds(servers, args.clients, args.rounds))
        finally:
            for process in processes:
                stop(process)
    ours_ms, base_ms = statistics.median(ours.times) * 1000, statistics.median(base.times) * 1000
    speed = base_ms / ours_ms
    ours_cpu, base_cpu = statistics.median(ours.cpu) * 1000, statistics.median(base.cpu) * 1000

    def spread(times: list[float]) -> str:
        ms = sorted(t * 1000 for t in times)
        quarter, three = ms[len(ms) // 4], ms[3 * len(ms) // 4]
        return f"{ms[0]:.1f}-{ms[-1]:.1f} (p25 {quarter:.1f}, p75 {three:.1f})"

    rows = [
        ("engine (broadcast pattern, as served)", f"{ours_ms:.1f} ms", spread(ours.times)),
        ("bare `websockets` server", f"{base_ms:.1f} ms", spread(base.times)),
        ("speed ratio (baseline time / engine time)", f"{speed:.2f}x (target >= 0.8x)", ""),
        ("engine server CPU per broadcast", f"{ours_cpu:.2f} ms", spread(ours.cpu)),
        ("bare server CPU per broadcast", f"{base_cpu:.2f} ms", spread(base.cpu)),
        ("CPU ratio (baseline / engine)", f"{base_cpu / ours_cpu:.2f}x", ""),
    ]
    title = f"websocket: one message to {args.clients} clients, median of {args.rounds}"
    print(table(title, ("", "median", "range over rounds (ms)"), rows))
    return {
        "ws_engine_ms": ours_ms,
        "ws_baseline_ms": base_ms,
        "ws_speed_ratio": speed,
        "ws_engine_cpu_ms": ours_cpu,
        "ws_baseline_cpu_ms": base_cpu,
    }


if __name__ == "__main__":
    main()
