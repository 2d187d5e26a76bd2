"""A private Ray head for tests and benchmarks: started with `setsid`, stopped by its PID.

    with ray_head(tmp_path) as head:
        head.address, head.serve_port, head.token

Every port is picked free (outside Ray's default worker range 10002-19999, which other
heads on this machine may use), the temp dir is private, and the head authenticates with
a random token. Stopping sends SIGTERM to the head's PID only (never `ray stop`, never by
name) and then waits for every process of its session to be gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.backends.local.procs import pick_free_port

WORKER_RANGE = range(10002, 20000)
WORKER_PORTS = 40
"""How many ports a head's workers get, above the lowest."""


@dataclass(frozen=True)
class Head:
    """A running Ray head: its dashboard address, Serve port, token and session id."""

    pid: int
    address: str
    serve_port: int
    token: str
    temp_dir: Path

    def session_pids(self) -> list[int]:
        """Every live process of the head's session (the head is its leader)."""
        return session_members(self.pid)


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def free_port(taken: set[int]) -> int:
    """A free port on 127.0.0.1 outside Ray's worker range and not in `taken`."""
    while True:
        port = pick_free_port()
        if port not in WORKER_RANGE and port not in taken:
            taken.add(port)
            return port


def worker_ports(taken: set[int], count: int = WORKER_PORTS) -> int:
    """The first of `count` consecutive ports none of which is in `taken` (Ray refuses to
    start when its worker range holds a port given to another of its components)."""
    while True:
        low = free_port(taken)
        if not any(port in taken for port in range(low + 1, low + count + 1)):
            return low


def ray_executable() -> str:
    """The `ray` script of this interpreter's environment."""
    return str(Path(sys.executable).with_name("ray"))


def start_head(temp_dir: Path, num_cpus: int = 2) -> tuple[subprocess.Popen[bytes], Head]:
    """Start a head in its own session and wait until its dashboard answers."""
    taken: set[int] = set()
    ports = {
        name: free_port(taken)
        for name in (
            "port",
            "dashboard-port",
            "ray-client-server-port",
            "node-manager-port",
            "object-manager-port",
            "metrics-export-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
        )
    }
    serve_port = free_port(taken)
    low = worker_ports(taken)
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2",
    }
    argv = [ray_executable(), "start", "--head", "--block", "--disable-usage-stats"]
    argv += [f"--{name}={port}" for name, port in ports.items()]
    # Workers get ports of their own, out of the default range other heads use.
    argv += [f"--min-worker-port={low}", f"--max-worker-port={low + WORKER_PORTS}"]
    argv += [f"--num-cpus={num_cpus}", "--object-store-memory=300000000"]
    argv += ["--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1"]
    argv += [f"--temp-dir={temp_dir}"]
    log = open(temp_dir.parent / "ray-head.log", "ab")  # noqa: SIM115 - lives with the head
    popen = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    head = Head(popen.pid, address, serve_port, token, temp_dir)
    _wait_ready(popen, head)
    return popen, head


def _wait_ready(popen: subprocess.Popen[bytes], head: Head, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {head.token}"}
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"ray start exited with {popen.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{head.address}/api/jobs/", headers=headers, timeout=2).is_success:
                return
        time.sleep(0.3)
    stop_head(popen, head)
    raise RuntimeError(f"the Ray head did not answer within {timeout:.0f} s")


def stop_head(popen: subprocess.Popen[bytes], head: Head, timeout: float = 60.0) -> list[int]:
    """SIGTERM the head's PID, wait for its session to empty; return what survived."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(head.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout)
    deadline = time.monotonic() + timeout
    while head.session_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = head.session_pids()
    for pid in survivors:  # only ours: they are members of the head's own session
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if popen.poll() is None:
        popen.kill()
        popen.wait()
    return survivors


@contextlib.contextmanager
def ray_head(folder: Path) -> Iterator[Head]:
    """A head for the duration of the block; its temp dir is removed afterwards."""
    temp_dir = folder / "ray"
    temp_dir.mkdir(parents=True, exist_ok=True)
    popen, head = start_head(temp_dir)
    try:
        yield head
    finally:
        stop_head(popen, head)
        shutil.rmtree(temp_dir, ignore_errors=True)
