import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.backends.local import procs

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "")}


def _wait_exited(handle: procs.ProcessHandle, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not handle.exited():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_spawn_starts_a_new_process_group_logging_stdout_and_stderr(tmp_path: Path) -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)"
    log = tmp_path / "logs" / "app.log"
    handle = procs.spawn([sys.executable, "-c", code], _env(), tmp_path, log)
    _wait_exited(handle)
    assert os.getpgid(os.getpid()) != handle.pid
    assert sorted(log.read_text().splitlines()) == ["err", "out"]
    assert handle.exited() is True


def test_spawned_process_leads_its_group_and_is_ours(tmp_path: Path) -> None:
    handle = procs.spawn(SLEEPER, _env(), tmp_path, tmp_path / "a.log")
    try:
        assert os.getpgid(handle.pid) == handle.pid
        assert handle.start_time == procs.process_start_time(handle.pid)
        assert procs.is_ours(handle.pid, handle.start_time) is True
        assert procs.is_ours(handle.pid, handle.start_time + 1) is False
        assert handle.exited() is False
    finally:
        handle.stop(grace=2)
    assert procs.is_ours(handle.pid, handle.start_time) is False
    assert handle.exited() is True


def test_is_ours_is_false_for_a_missing_pid_or_none() -> None:
    assert procs.process_start_time(2**22 + 1) is None
    assert procs.is_ours(2**22 + 1, 1) is False
    assert procs.is_ours(None, None) is False


def test_a_zombie_is_not_ours(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = procs.process_start_time(child.pid)
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
        time.sleep(0.02)
    assert start is not None
    assert procs.is_ours(child.pid, start) is False
    child.wait()


def test_terminate_group_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "a.log"
    handle = procs.spawn([sys.executable, "-c", code], _env(), tmp_path, log)
    while "ready" not in log.read_text():
        time.sleep(0.02)
    started = time.monotonic()
    assert procs.terminate_group(handle.pid, handle.start_time, grace=0.3) is True
    assert 0.3 <= time.monotonic() - started < 3
    _wait_exited(handle)


def test_terminate_group_stops_the_whole_group(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time;"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(c.pid, flush=True); time.sleep(60)"
    )
    log = tmp_path / "a.log"
    handle = procs.spawn([sys.executable, "-c", code], _env(), tmp_path, log)
    while not log.read_text().strip():
        time.sleep(0.02)
    grandchild = int(log.read_text())
    grandchild_start = procs.process_start_time(grandchild)
    handle.stop(grace=2)
    deadline = time.monotonic() + 5
    while procs.is_ours(grandchild, grandchild_start) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procs.is_ours(grandchild, grandchild_start) is False


def test_terminate_group_leaves_a_process_with_another_start_time_alone(tmp_path: Path) -> None:
    handle = procs.spawn(SLEEPER, _env(), tmp_path, tmp_path / "a.log")
    try:
        assert procs.terminate_group(handle.pid, handle.start_time - 1, grace=0.1) is False
        assert procs.is_ours(handle.pid, handle.start_time) is True
    finally:
        handle.stop(grace=2)


def test_a_log_over_the_limit_is_rotated_at_start_keeping_three(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    for n in (3, 2, 1):
        log.with_name(f"app.log.{n}").write_text(f"old {n}\n")
    log.write_text("x" * 11)
    handle = procs.spawn(
        [sys.executable, "-c", "print('new')"], _env(), tmp_path, log, max_log_bytes=10
    )
    _wait_exited(handle)
    assert log.read_text() == "new\n"
    assert [log.with_name(f"app.log.{n}").read_text() for n in (1, 2, 3)] == [
        "x" * 11,
        "old 1\n",
        "old 2\n",
    ]
    assert not log.with_name("app.log.4").exists()


def test_a_log_under_the_limit_is_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("before\n")
    handle = procs.spawn([sys.executable, "-c", "print('after')"], _env(), tmp_path, log)
    _wait_exited(handle)
    assert log.read_text() == "before\nafter\n"
    assert handle.log_offset == 7
    assert handle.log_tail() == "after"


def test_log_tail_returns_the_last_lines_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    text = "".join(f"line {n}\n" for n in range(30))
    log.write_text(text)
    assert procs.log_tail(log, 0, 3) == "line 27\nline 28\nline 29"
    assert procs.log_tail(log, text.index("line 29"), 5) == "line 29"
    assert procs.log_tail(tmp_path / "missing.log") == ""


def test_pick_free_port_returns_a_bindable_port() -> None:
    port = procs.pick_free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535
