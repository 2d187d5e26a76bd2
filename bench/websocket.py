"""One message broadcast to 500 connected WebSocket clients: time until all received it.

engine: a generated app with `websockets: [{path: /broadcast, pattern: broadcast}]`,
served by plain uvicorn. Baseline, in the same run: a bare server written with the
`websockets` library doing the same broadcast (bench/baselines/ws_broadcast.py).

Clients: this process, 500 `websockets` client connections (no compression) and one
sender; a round is timed from the send to the last of the 500 receives; 5 rounds after a
warm-up, the median is reported. Target: engine >= 0.8x the baseline's speed (its
median time at most 1.25x the baseline's).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, free_port, start_uvicorn, stop, table, wait_healthy
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


async def _rounds(url: str, clients: int, rounds: int) -> list[float]:
    receivers = await _open(url, clients)
    sender = await connect(url, compression=None)
    times = []
    try:
        for n in range(rounds + 1):  # round 0 is a warm-up
            tag = f'{{"round": {n}, "text": "hello, everyone"}}'
            waiting = [asyncio.create_task(_until(c, tag)) for c in receivers]
            echo = asyncio.create_task(_until(sender, tag))
            await asyncio.sleep(0)  # every receiver is waiting before the send
            start = time.perf_counter()
            await sender.send(tag)
            last = max(await asyncio.gather(*waiting))
            await echo
            if n:
                times.append(last - start)
            await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(c.close() for c in [*receivers, sender]))
    return times


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


def measure(process: subprocess.Popen, url: str, clients: int, rounds: int) -> list[float]:
    try:
        _wait_socket(url)
        return asyncio.run(_rounds(url, clients, rounds))
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500, help="receiving clients (500)")
    parser.add_argument("--rounds", type=int, default=5, help="timed broadcasts (5)")
    args = parser.parse_args(argv)
    raise_fd_limit(2 * args.clients + 256)  # inherited by the servers started below
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "spec.yaml").write_text(SPEC)
        cli = [sys.executable, "-m", "engine.cli", "build", "spec.yaml", "-o", "build"]
        subprocess.run(cli, cwd=folder, check=True, capture_output=True)
        port = free_port()
        app = start_uvicorn("_engine_app", folder / "build" / "live", port, {"PYTHONPATH": name})
        wait_healthy(f"http://127.0.0.1:{port}/health")
        ours = measure(app, f"ws://127.0.0.1:{port}/broadcast", args.clients, args.rounds)
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "baselines" / "ws_broadcast.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = measure(bare, f"ws://127.0.0.1:{port}/broadcast", args.clients, args.rounds)
    ours_ms, base_ms = statistics.median(ours) * 1000, statistics.median(base) * 1000
    speed = base_ms / ours_ms

    def spread(times: list[float]) -> str:
        return ", ".join(f"{t * 1000:.0f}" for t in times)

    rows = [
        ("engine (broadcast pattern, uvicorn)", f"{ours_ms:.1f} ms", spread(ours)),
        ("bare `websockets` server", f"{base_ms:.1f} ms", spread(base)),
        ("speed ratio (baseline time / engine time)", f"{speed:.2f}x (target >= 0.8x)", ""),
    ]
    title = f"websocket: one message to {args.clients} clients, median of {args.rounds}"
    print(table(title, ("", "send to last receive", "rounds (ms)"), rows))
    return {"ws_engine_ms": ours_ms, "ws_baseline_ms": base_ms, "ws_speed_ratio": speed}


if __name__ == "__main__":
    main()
