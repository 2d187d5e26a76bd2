"""Process utilities: spawn an app in its own process group, recognise it later, stop it.

A process is *ours* only if its pid and its start time (field 22 of `/proc/<pid>/stat`)
both match what was recorded when it was spawned, so a reused pid is never mistaken for
one of ours. A zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_KEEP = 3
_POLL = 0.05


@dataclass
class ProcessHandle:
    """A process we started (or re-adopted): pid, start time, and where its log begins."""

    pid: int
    start_time: int
    log_path: Path | None = None
    log_offset: int = 0
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def adopt(cls, pid: int, start_time: int, log_path: Path | None = None) -> ProcessHandle:
        """A handle on a process that is not our child (started by an earlier control plane)."""
        return cls(pid=pid, start_time=start_time, log_path=log_path)

    def exited(self) -> bool:
        """True once the process is gone; reaps it if it is our child."""
        if self._popen is not None:
            return self._popen.poll() is not None
        return not is_ours(self.pid, self.start_time)

    @property
    def exit_code(self) -> int | None:
        """The exit code of a child that has exited (None while it runs, or if adopted)."""
        return self._popen.returncode if self._popen is not None else None

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after `grace`) and reap the leader."""
        terminate_group(self.pid, self.start_time, grace)
        if self._popen is not None:
            self._popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines this process wrote to its log."""
        if self.log_path is None:
            return ""
        return log_tail(self.log_path, self.log_offset, lines)


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | str,
    log_path: Path,
    *,
    max_log_bytes: int = LOG_MAX_BYTES,
    pass_fds: Sequence[int] = (),
) -> ProcessHandle:
    """Start `argv` in a new session with stdout and stderr appended to `log_path`; the fds
    in `pass_fds` stay open in it under the same numbers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_path, max_log_bytes)
    with open(log_path, "ab") as log:
        offset = log.tell()
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    # The child cannot be reaped before we poll it, so its /proc entry is still there.
    start_time = process_start_time(popen.pid)
    if start_time is None:  # pragma: no cover - only if /proc is missing
        popen.kill()
        popen.wait()
        raise OSError(f"cannot read /proc/{popen.pid}/stat for the process just started")
    return ProcessHandle(popen.pid, start_time, log_path, offset, popen)


def rotate_log(path: Path, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP) -> bool:
    """Rotate `path` to `path.1` (older ones up to `path.<keep>`) if it exceeds `max_bytes`."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))
    return True


def log_tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """The last `lines` lines of `path` after byte `offset` ('' if there is no such file)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            tail = deque(f, maxlen=lines)
    except FileNotFoundError:
        return ""
    return b"".join(tail).decode("utf-8", "replace").rstrip("\n")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of `/proc/<pid>/stat` (after the parenthesised command name)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (stat field 22), or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_ours(pid: int | None, start_time: int | None) -> bool:
    """True if `pid` is alive (not a zombie) and started at `start_time`."""
    if pid is None or start_time is None or pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == start_time


def terminate_group(pid: int, start_time: int, grace: float = 5.0) -> bool:
    """SIGTERM the process group led by `pid`, then SIGKILL it after `grace` seconds.

    Does nothing unless the process is ours; returns whether a signal was sent. The
    process need not be our child: its end is observed by polling, not by waiting.
    """
    if not is_ours(pid, start_time):
        return False
    _killpg(pid, signal.SIGTERM)
    if _wait_gone(pid, start_time, grace):
        return True
    if is_ours(pid, start_time):
        _killpg(pid, signal.SIGKILL)
        _wait_gone(pid, start_time, 5.0)
    return True


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_gone(pid: int, start_time: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_ours(pid, start_time):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def listen(port: int | None = None, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:`port` (a free one if None), held for an app.

    SO_REUSEPORT lets a restarted control plane bind the port again while an adopted app
    still holds the old socket (the kernel allows it for the same user only). IPPROTO_TCP,
    so that asyncio in the app sets TCP_NODELAY on its connections.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port or 0))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def marked(variable: str, marker: str, exclude: int | None = None) -> list[tuple[int, int]]:
    """(pid, start time) of every process of this user whose environment holds
    `variable=marker`: what the engine started, found without its state."""
    needle = f"{variable}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), exclude):
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        start = process_start_time(int(entry.name))
        if needle in environ and start is not None and is_ours(int(entry.name), start):
            found.append((int(entry.name), start))
    return sorted(found)


def terminate_marked(variable: str, marker: str, grace: float = 5.0) -> int:
    """End every process `marked()` finds, each by its pid (SIGTERM, then SIGKILL after
    `grace`), children that left their group with setsid included; return how many."""
    found = marked(variable, marker)
    for pid, _ in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(is_ours(*p) for p in found) and time.monotonic() < deadline:
        time.sleep(_POLL)
    for pid, start in found:
        if is_ours(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(found)


def pick_free_port() -> int:
    """A port on 127.0.0.1 that is free right now.

    Another process may take it before the app binds it; the app then fails its health
    check and the caller sees why. That race is accepted.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
