import dataclasses
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.state import (
    ApplyLock,
    AppRecord,
    ControlPlaneInfo,
    LockHeldError,
    State,
)

HOLDER = """
import sys, time
from pathlib import Path
from engine.state import ApplyLock
ApplyLock(Path(sys.argv[1]), command="engine apply spec.yaml").acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path, float], subprocess.Popen[str]]]:
    """Start processes that take the lock and hold it for some seconds; end them after."""
    started: list[subprocess.Popen[str]] = []

    def start(dir: Path, seconds: float) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", HOLDER, str(dir), str(seconds)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "locked\n"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_state_creates_a_wal_database_in_the_folder(tmp_path: Path) -> None:
    with State(tmp_path / ".engine") as state:
        assert state.path == tmp_path / ".engine" / "state.db"
    db = sqlite3.connect(tmp_path / ".engine" / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
    assert [t for (t,) in tables if t != "sqlite_sequence"] == [
        "applies",
        "apps",
        "tasks",
        "versions",
    ]
    db.close()


def test_app_records_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    record = AppRecord(
        name="api",
        hash="abc",
        state="running",
        port=8001,
        pid=4242,
        start_time=99,
        restarts=2,
        url="http://127.0.0.1:8001",
        spec_json='{"routes": 1}',
    )
    with State(tmp_path) as state:
        written = state.put_app(record)
        state.put_app(AppRecord(name="web", hash="def", state="stopped"))
    assert written.updated_at > 0
    with State(tmp_path) as state:
        assert state.get_app("api") == written
        assert [a.name for a in state.apps()] == ["api", "web"]
        state.delete_app("api")
        assert state.get_app("api") is None
        assert [a.name for a in state.apps()] == ["web"]


def test_app_records_have_no_field_for_secret_values() -> None:
    names = [f.name for f in dataclasses.fields(AppRecord)]
    assert names == [
        "name",
        "hash",
        "state",
        "port",
        "pid",
        "start_time",
        "restarts",
        "url",
        "spec_json",
        "updated_at",
    ]


def test_tasks_are_recorded_by_name(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        state.put_task("deploy", "h1")
        state.put_task("build", "h2")
        state.put_task("deploy", "h3")
        assert state.tasks() == {"build": "h2", "deploy": "h3"}
        state.delete_task("build")
        assert state.tasks() == {"deploy": "h3"}


def test_applies_are_recorded_newest_first(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        first = state.begin_apply("s1")
        state.finish_apply(first, "ok", "2 started")
        second = state.begin_apply("s2")
        applies = state.applies()
    assert [(a.id, a.spec_hash, a.result, a.summary) for a in applies] == [
        (second, "s2", None, ""),
        (first, "s1", "ok", "2 started"),
    ]
    assert applies[0].finished_at is None
    assert applies[1].finished_at is not None
    assert applies[1].finished_at >= applies[1].started_at


def test_control_plane_info_is_written_with_mode_0600(tmp_path: Path) -> None:
    info = ControlPlaneInfo(url="http://127.0.0.1:7000", pid=12, start_time=34, token="t0k")
    path = info.write(tmp_path)
    assert path == tmp_path / "control-plane.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ControlPlaneInfo.read(tmp_path) == info
    assert [p.name for p in tmp_path.iterdir()] == ["control-plane.json"]


def test_control_plane_info_rewrite_keeps_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "control-plane.json"
    path.write_text("{}")
    path.chmod(0o644)
    assert ControlPlaneInfo.read(tmp_path) is None
    ControlPlaneInfo("http://127.0.0.1:1", 1, 2, "x").write(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ControlPlaneInfo.remove(tmp_path)
    ControlPlaneInfo.remove(tmp_path)
    assert ControlPlaneInfo.read(tmp_path) is None


def test_lock_writes_its_holder_and_clears_it_on_release(tmp_path: Path) -> None:
    lock = ApplyLock(tmp_path, command="engine apply spec.yaml")
    lock.acquire()
    holder = lock.holder()
    assert holder is not None
    assert (holder["pid"], holder["command"]) == (os.getpid(), "engine apply spec.yaml")
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    lock.release()
    assert lock.holder() is None
    with ApplyLock(tmp_path):
        pass


def test_a_second_acquirer_fails_naming_the_holder(tmp_path: Path, hold_lock) -> None:
    proc = hold_lock(tmp_path, 30)
    with pytest.raises(LockHeldError) as info:
        ApplyLock(tmp_path).acquire()
    message = str(info.value)
    assert message.startswith(
        f"{tmp_path / 'lock'} is held by pid {proc.pid} (engine apply spec.yaml, since "
    )
    assert message.endswith("); try again once it has finished")
    assert isinstance(info.value, EngineError)
    with pytest.raises(LockHeldError):
        ApplyLock(tmp_path).acquire(wait=True, timeout=0.2)


def test_a_waiting_acquirer_gets_the_lock_once_it_is_released(tmp_path: Path, hold_lock) -> None:
    hold_lock(tmp_path, 0.5)
    lock = ApplyLock(tmp_path, command="engine destroy")
    started = time.monotonic()
    lock.acquire(wait=True, timeout=10)
    assert time.monotonic() - started > 0.2
    holder = lock.holder()
    assert holder is not None
    assert (holder["pid"], holder["command"]) == (os.getpid(), "engine destroy")
    lock.release()


def test_the_lock_of_a_killed_holder_is_free(tmp_path: Path, hold_lock) -> None:
    proc = hold_lock(tmp_path, 30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lock = ApplyLock(tmp_path)
    lock.acquire()
    assert lock.holder()["pid"] == os.getpid()
    lock.release()
