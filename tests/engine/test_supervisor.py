import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import httpx
import pytest

from engine.backends.local import procs
from engine.backends.local.procs import ProcessHandle
from engine.backends.local.supervisor import (
    PORT,
    TRANSITIONS,
    AppState,
    Backoff,
    Effects,
    HealthCheckError,
    ProcessSpec,
    Supervisor,
)
from engine.errors import ApplyError
from engine.state import AppRecord, State

APPS = Path(__file__).parent / "apps"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def tiny(
    tmp_path: Path,
    name: str = "api",
    *,
    version: str = "1",
    port: int | None = None,
    args: Sequence[str] = (),
    timeout: float = 10.0,
) -> ProcessSpec:
    argv = [sys.executable, str(APPS / "tiny.py"), "--port", PORT, "--version", version, *args]
    return ProcessSpec(
        name=name,
        argv=argv,
        env=ENV,
        cwd=tmp_path,
        hash=f"h{version}",
        port=port,
        health_timeout=timeout,
        config_json=json.dumps({"version": version}),
    )


@contextlib.asynccontextmanager
async def supervising(tmp_path: Path, **options: object) -> AsyncIterator[Supervisor]:
    """A supervisor over tmp_path/.engine; every process it recorded is gone afterwards."""
    state = State(tmp_path / ".engine")
    supervisor = Supervisor(state, tmp_path / ".engine" / "logs", **options)  # type: ignore[arg-type]
    try:
        yield supervisor
    finally:
        await supervisor.stop_all()
        await supervisor.aclose()
        for record in state.apps():
            if record.pid is not None and record.start_time is not None:
                procs.terminate_group(record.pid, record.start_time, grace=1)
        state.close()


async def get(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return response.json()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def only(supervisor: Supervisor) -> dict[str, object]:
    [status] = supervisor.status()
    return status


def booted(log_tail: str) -> tuple[int, int]:
    """The port and pid a tiny app announced in its log."""
    match = re.search(r"booting on port (\d+) \(pid (\d+)\)", log_tail)
    assert match is not None
    return int(match[1]), int(match[2])


# the state machine


def test_the_transitions_are_exactly_these() -> None:
    S = AppState
    assert {(a.name, b.name) for a, targets in TRANSITIONS.items() for b in targets} == {
        ("STOPPED", "STARTING"),
        ("RUNNING", "UNHEALTHY"),
        ("UNHEALTHY", "BACKOFF"),
        ("UNHEALTHY", "STOPPING"),
        ("STARTING", "RUNNING"),
        ("STARTING", "BACKOFF"),
        ("STARTING", "FAILED"),
        ("STARTING", "STOPPING"),
        ("RUNNING", "BACKOFF"),
        ("RUNNING", "STOPPING"),
        ("BACKOFF", "STARTING"),
        ("BACKOFF", "FAILED"),
        ("BACKOFF", "STOPPING"),
        ("STOPPING", "STOPPED"),
        ("FAILED", "STARTING"),
        ("FAILED", "STOPPING"),
    }
    assert set(TRANSITIONS) == set(S)


def test_backoff_doubles_from_half_a_second_up_to_thirty() -> None:
    delays = [Backoff().delay(n) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


class FakeEffects(Effects):
    """Processes that live for given (fake) seconds, always healthy, on a fake clock."""

    def __init__(self, lifetimes: list[float]) -> None:
        super().__init__()
        self.clock = 0.0
        self.lifetimes = lifetimes
        self.spawned_at: list[float] = []
        self.dies_at: dict[int, float] = {}

    def spawn(self, argv: Sequence[str], env: object, cwd: Path, log: Path) -> ProcessHandle:
        self.spawned_at.append(self.clock)
        handle = ProcessHandle(pid=1000 + len(self.spawned_at), start_time=1)
        self.dies_at[handle.pid] = self.clock + self.lifetimes.pop(0)
        return handle

    def exited(self, handle: ProcessHandle) -> bool:
        return self.clock >= self.dies_at[handle.pid]

    async def stop(self, handle: ProcessHandle, grace: float) -> None:
        self.dies_at[handle.pid] = min(self.dies_at[handle.pid], self.clock)

    async def probe(self, url: str) -> bool:
        return True

    def free_port(self) -> int:
        return 5000

    def now(self) -> float:
        return self.clock

    async def sleep(self, seconds: float) -> None:
        self.clock += seconds
        await asyncio.sleep(0)


def test_crashes_back_off_doubling_and_a_long_run_resets_the_count(tmp_path: Path) -> None:
    lifetimes = [1.0, 1.0, 1.0, 100.0, 1000.0]
    effects = FakeEffects(list(lifetimes))

    async def main() -> None:
        async with supervising(tmp_path, effects=effects) as supervisor:
            await supervisor.start(tiny(tmp_path))
            await until(lambda: len(effects.spawned_at) == 5)
            await until(lambda: supervisor.app_state("api") is AppState.RUNNING)
            assert only(supervisor)["restarts"] == 4

    asyncio.run(main())
    # A crash is seen within one 0.1 s poll; after 100 s up, the back-off starts again.
    spawned = effects.spawned_at
    delays = [spawned[n + 1] - spawned[n] - lifetimes[n] for n in range(4)]
    assert delays == pytest.approx([0.5, 1.0, 2.0, 0.5], abs=0.11)


def test_too_many_quick_failures_in_a_row_leave_the_app_failed(tmp_path: Path) -> None:
    effects = FakeEffects([0.5] * 4)

    async def main() -> None:
        async with supervising(tmp_path, effects=effects, backoff=Backoff(max_failures=4)) as sup:
            await sup.start(tiny(tmp_path))
            await until(lambda: sup.app_state("api") is AppState.FAILED)
            assert only(sup) == {
                "name": "api",
                "state": "failed",
                "url": None,
                "port": None,
                "pid": None,
                "restarts": 3,
            }
            record = sup.state.get_app("api")
            assert (record.state, record.pid, record.restarts) == ("failed", None, 3)

    asyncio.run(main())
    spawned = effects.spawned_at
    delays = [spawned[n + 1] - spawned[n] - 0.5 for n in range(3)]
    assert delays == pytest.approx([0.5, 1.0, 2.0], abs=0.11)


# starting


def test_start_waits_for_health_and_records_the_process(tmp_path: Path) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(tiny(tmp_path, args=["--boot-delay", "0.3"]))
            status = only(supervisor)
            port, pid = status["port"], status["pid"]
            assert status == {
                "name": "api",
                "state": "running",
                "url": f"http://127.0.0.1:{port}",
                "port": port,
                "pid": pid,
                "restarts": 0,
            }
            assert await get(f"http://127.0.0.1:{port}/") == {"version": "1", "pid": pid}
            record = supervisor.state.get_app("api")
            assert record == AppRecord(
                name="api",
                hash="h1",
                state="running",
                port=port,
                pid=pid,
                start_time=procs.process_start_time(pid),
                restarts=0,
                url=f"http://127.0.0.1:{port}",
                spec_json='{"version": "1"}',
                updated_at=record.updated_at,
            )
            with pytest.raises(ValueError) as info:
                await supervisor.start(tiny(tmp_path))
            assert str(info.value) == "app 'api' is already running; use replace()"

    asyncio.run(main())


def test_start_runs_a_fastapi_app_under_uvicorn_on_a_fixed_port(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from fastapi import FastAPI\n"
        "app = FastAPI()\n"
        "@app.get('/health')\n"
        "def health() -> dict:\n"
        "    return {'ok': True}\n"
    )
    port = procs.pick_free_port()
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", PORT]
    spec = ProcessSpec("web", argv, ENV, tmp_path, "h", port=port, health_timeout=20)

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(spec)
            assert await get(f"http://127.0.0.1:{port}/health") == {"ok": True}
            assert only(supervisor)["port"] == port
        assert not listening(port)

    asyncio.run(main())


def test_independent_apps_start_in_parallel_and_stop_leaves_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            specs = [tiny(tmp_path, name) for name in ("a", "b", "c")]
            await asyncio.gather(*(supervisor.start(spec) for spec in specs))
            before = {s["name"]: s for s in supervisor.status()}
            assert [s["state"] for s in before.values()] == ["running"] * 3
            assert len({s["port"] for s in before.values()}) == 3
            records = {r.name: r for r in supervisor.state.apps()}

            await supervisor.stop("a")
            assert supervisor.status()[0] == {
                "name": "a",
                "state": "stopped",
                "url": None,
                "port": None,
                "pid": None,
                "restarts": 0,
            }
            assert not listening(before["a"]["port"])
            assert not procs.is_ours(records["a"].pid, records["a"].start_time)
            assert procs.is_ours(records["b"].pid, records["b"].start_time)

            await supervisor.stop_all()
            assert [s["state"] for s in supervisor.status()] == ["stopped"] * 3
            for name, record in records.items():
                assert not listening(before[name]["port"])
                assert not procs.is_ours(record.pid, record.start_time)
            assert [(r.state, r.pid) for r in supervisor.state.apps()] == [("stopped", None)] * 3

            await supervisor.remove("a")
            assert [s["name"] for s in supervisor.status()] == ["b", "c"]
            assert supervisor.state.get_app("a") is None

    asyncio.run(main())


def test_a_never_healthy_app_fails_with_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            spec = tiny(tmp_path, args=["--unhealthy"], timeout=1.0)
            with pytest.raises(HealthCheckError) as info:
                await supervisor.start(spec)
            error = info.value
            port, pid = booted(error.log_tail)
            lines = error.log_tail.splitlines()
            assert lines[:2] == [
                f"tiny 1 booting on port {port} (pid {pid})",
                "not ready: the database is missing",
            ]
            assert set(lines[2:]) == {"GET /health 503"}
            assert len(lines) <= 20
            assert str(error) == (
                f"app 'api' did not answer 200 on http://127.0.0.1:{port}/health within 1 s;"
                f" the end of its log:\n{error.log_tail}"
            )
            assert isinstance(error, ApplyError)
            assert procs.process_start_time(pid) is None
            assert not listening(port)
            assert only(supervisor)["state"] == "failed"
            assert supervisor.state.get_app("api").pid is None

    asyncio.run(main())


def test_an_app_that_exits_at_once_fails_without_waiting_for_the_timeout(tmp_path: Path) -> None:
    code = "print('boom: no module named handlers'); raise SystemExit(2)"
    spec = ProcessSpec("api", [sys.executable, "-c", code], ENV, tmp_path, "h", health_timeout=30)

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            started = time.monotonic()
            with pytest.raises(HealthCheckError) as info:
                await supervisor.start(spec)
            assert time.monotonic() - started < 10
            assert str(info.value) == (
                "app 'api' exited before it was healthy; the end of its log:\n"
                "boom: no module named handlers"
            )

    asyncio.run(main())


# crashes


def test_a_killed_app_is_restarted_with_backoff_and_counted(tmp_path: Path) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(tiny(tmp_path))
            first = only(supervisor)
            assert supervisor.failure("api") == ""
            for restarts, min_delay in ((1, 0.5), (2, 1.0)):
                pid = only(supervisor)["pid"]
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                await until(lambda: only(supervisor)["state"] == "backoff")
                assert only(supervisor)["pid"] is None
                await until(lambda: only(supervisor)["state"] == "running")
                assert time.monotonic() - killed >= min_delay
                status = only(supervisor)
                assert status["restarts"] == restarts
                assert status["port"] == first["port"]
                assert status["pid"] != pid
                assert supervisor.failure("api") == "exited with code -9"  # kept, for the console
                url = f"http://127.0.0.1:{status['port']}/"
                assert await get(url) == {"version": "1", "pid": status["pid"]}
            record = supervisor.state.get_app("api")
            assert (record.state, record.restarts, record.pid) == ("running", 2, status["pid"])

    asyncio.run(main())


def test_an_app_that_keeps_crashing_ends_failed(tmp_path: Path) -> None:
    backoff = Backoff(initial=0.05, max_failures=3)

    async def main() -> None:
        async with supervising(tmp_path, backoff=backoff) as supervisor:
            await supervisor.start(tiny(tmp_path, args=["--exit-after", "0.3"]))
            await until(lambda: only(supervisor)["state"] == "failed")
            assert only(supervisor)["restarts"] == 2
            assert supervisor.state.get_app("api").state == "failed"

    asyncio.run(main())


# replacing


def test_replace_keeps_the_old_version_serving_until_the_new_one_is_healthy(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(tiny(tmp_path))
            old = only(supervisor)
            old_record = supervisor.state.get_app("api")
            gate = tmp_path / "let-version-2-listen"
            new = tiny(tmp_path, version="2", args=["--boot-gate", str(gate)], timeout=60)
            replacing = asyncio.create_task(supervisor.replace(new))
            # While the new version cannot be healthy, the old one answers every request.
            answers = [await get(f"{old['url']}/") for _ in range(5)]
            assert not replacing.done()
            gate.touch()
            while not replacing.done():
                try:
                    answers.append(await get(f"{old['url']}/"))
                except httpx.TransportError:  # refused, or cut while stopping: both only
                    assert only(supervisor)["pid"] != old["pid"]  # after the new one took over
                    break
                await asyncio.sleep(0.05)
            await replacing
            assert {a["version"] for a in answers} == {"1"}

            status = only(supervisor)
            assert (status["state"], status["restarts"]) == ("running", 0)
            assert status["port"] != old["port"]
            assert (await get(f"{status['url']}/"))["version"] == "2"
            assert not listening(old["port"])
            assert not procs.is_ours(old_record.pid, old_record.start_time)
            record = supervisor.state.get_app("api")
            assert (record.hash, record.port, record.pid) == ("h2", status["port"], status["pid"])
            assert record.spec_json == '{"version": "2"}'

    asyncio.run(main())


def test_a_failing_replacement_leaves_the_old_version_serving(tmp_path: Path) -> None:
    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(tiny(tmp_path))
            old = only(supervisor)
            old_record = supervisor.state.get_app("api")
            with pytest.raises(HealthCheckError) as info:
                await supervisor.replace(
                    tiny(tmp_path, version="2", args=["--unhealthy"], timeout=1)
                )
            new_port, new_pid = booted(info.value.log_tail)
            assert not listening(new_port)
            assert procs.process_start_time(new_pid) is None
            assert only(supervisor) == old
            assert await get(f"{old['url']}/") == {"version": "1", "pid": old["pid"]}
            record = supervisor.state.get_app("api")
            assert (record.hash, record.pid, record.start_time, record.port, record.state) == (
                "h1",
                old_record.pid,
                old_record.start_time,
                old_record.port,
                "running",
            )

    asyncio.run(main())


def test_replace_on_a_fixed_port_stops_then_starts_and_restores_on_failure(
    tmp_path: Path,
) -> None:
    port = procs.pick_free_port()
    url = f"http://127.0.0.1:{port}/"

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.start(tiny(tmp_path, port=port))
            await supervisor.replace(tiny(tmp_path, version="2", port=port))
            assert (await get(url))["version"] == "2"
            assert only(supervisor)["port"] == port

            with pytest.raises(HealthCheckError):
                await supervisor.replace(
                    tiny(tmp_path, version="3", port=port, args=["--unhealthy"], timeout=1)
                )
            assert (await get(url))["version"] == "2"
            assert only(supervisor)["state"] == "running"
            assert supervisor.state.get_app("api").hash == "h2"

    asyncio.run(main())


# adopting after a control-plane restart


def test_a_new_supervisor_adopts_a_running_app_and_restarts_it_when_killed(
    tmp_path: Path,
) -> None:
    dir = tmp_path / ".engine"
    spec = tiny(tmp_path)
    spec_json = json.dumps(
        {"name": spec.name, "argv": list(spec.argv), "env": ENV, "cwd": str(tmp_path), "hash": "h1"}
    )
    argv = [sys.executable, str(APPS / "controlplane.py"), str(dir), spec_json]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as control_plane:
        try:
            assert control_plane.stdout.readline() == "ready\n"
        finally:
            control_plane.kill()
    with State(dir) as state:
        record = state.get_app("api")
    assert record.state == "running"
    assert procs.is_ours(record.pid, record.start_time)

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.adopt(record, spec)
            assert only(supervisor) == {
                "name": "api",
                "state": "running",
                "url": record.url,
                "port": record.port,
                "pid": record.pid,
                "restarts": 0,
            }
            assert (await get(f"{record.url}/"))["pid"] == record.pid

            os.kill(record.pid, signal.SIGKILL)
            await until(lambda: only(supervisor)["restarts"] == 1)
            await until(lambda: only(supervisor)["state"] == "running")
            new_pid = only(supervisor)["pid"]
            assert new_pid != record.pid
            assert await get(f"{record.url}/") == {"version": "1", "pid": new_pid}

    asyncio.run(main())
    assert not listening(record.port)


def _dead_process() -> tuple[int, int]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start_time = procs.process_start_time(child.pid)
    child.wait()
    assert start_time is not None
    return child.pid, start_time


@pytest.mark.parametrize(
    "who",
    ["dead", "reused"],
    ids=["process-gone", "pid-reused-by-another-process"],
)
def test_adopt_restarts_an_app_whose_process_is_not_ours(tmp_path: Path, who: str) -> None:
    if who == "dead":
        pid, start_time = _dead_process()
    else:  # this very test process, with a start time that is not its own
        pid, start_time = os.getpid(), procs.process_start_time(os.getpid()) - 1
    port = procs.pick_free_port()
    record = AppRecord("api", "h1", "running", port, pid, start_time, 4, f"http://127.0.0.1:{port}")

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.adopt(record, tiny(tmp_path))
            await until(lambda: only(supervisor)["state"] == "running")
            status = only(supervisor)
            assert (status["port"], status["restarts"]) == (port, 5)
            assert status["pid"] != pid
            assert (await get(f"{record.url}/"))["pid"] == status["pid"]

    asyncio.run(main())
    assert not listening(port)


@pytest.mark.parametrize("recorded", ["stopped", "stopping"])
def test_adopt_leaves_an_app_that_was_stopped_stopped(tmp_path: Path, recorded: str) -> None:
    pid, start_time = _dead_process()
    record = AppRecord("api", "h1", recorded, 8999, pid, start_time)

    async def main() -> None:
        async with supervising(tmp_path) as supervisor:
            await supervisor.adopt(record, tiny(tmp_path))
            await asyncio.sleep(0.3)
            assert only(supervisor) == {
                "name": "api",
                "state": "stopped",
                "url": None,
                "port": None,
                "pid": None,
                "restarts": 0,
            }
            stored = supervisor.state.get_app("api")
            assert (stored.state, stored.pid, stored.port) == ("stopped", None, None)

    asyncio.run(main())
