"""The worker process: `python -m engine.backends.local.worker --fd N module:function`.

Started by the local task executor in the task's folder and environment. It imports the
handler once, then serves jobs over the socket `N` (never stdout/stderr: user code prints
there), one JSON object per line each way:

    worker -> executor  {"ready": true} | {"ready": false, "error": "..."}    once, at start
    executor -> worker  {"id", "inputs", "log_path", "attempt", "env",
                         "result_path", "log_cap"}                            per run
    worker -> executor  {"id", "attempt", "ok": true, "outputs"}
                      | {"id", "attempt", "ok": false, "error"}

A control plane killed while a run was in flight cannot read its reply: when the socket
ends (or a reply cannot be sent) before the next job, which shows the last reply was
read, the worker writes that reply to the job's `result_path` (atomically) for the next
control plane, then exits. `{"stop": true}` ends it without.

fds 1 and 2 are a pipe (`Output`) copied into the current run's log file, up to `log_cap`
bytes of file; at the cap one line says so and the rest is dropped. A failure's traceback
goes to the log, while `error` holds only the exception's type and message.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.backends.attempt import call, describe, load_handler, outcome

DEFAULT_LOG_CAP = 10 * 2**20
"""Bytes a run's log file may hold (all its attempts together) unless the job says."""


_CHUNK = 65536
_DRAIN_MAX = 2**20
"""Most bytes a run's end copies itself: what the run wrote is at most a pipe's capacity;
more would be a process it left behind, still writing (the copier thread takes that)."""


class Output:
    """fds 1 and 2 of the worker (and so sys.stdout/stderr and child processes): one pipe,
    which a thread copies to the current run's log, up to its cap, and between runs to the
    worker's own output. At a run's end the worker itself copies what is left in the pipe
    (under the same lock), so the log is complete when the reply is sent, without waking
    the thread for runs that print nothing. A process a run left behind still writes to
    the pipe: its output goes to wherever the worker is logging then."""

    def __init__(self) -> None:
        self._own = os.dup(1)
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._pipe = read
        self._lock = threading.Lock()
        self._log: int | None = None
        self._room = 0
        self._cap = 0
        threading.Thread(target=self._copy, name="engine-output", daemon=True).start()

    @contextmanager
    def to(self, log_path: str, cap: int) -> Iterator[None]:
        """Send the output to `log_path` for the duration, keeping the file within `cap`."""
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with self._lock:
            self._drain()  # what came before belongs to the worker's own output
            self._log, self._room, self._cap = log, cap - os.fstat(log).st_size, cap
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            with self._lock:
                self._drain()
                self._log = None
            os.close(log)

    def _copy(self) -> None:
        poller = select.poll()
        poller.register(self._pipe, select.POLLIN)
        while True:
            poller.poll()
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        """Copy what the pipe holds now (the lock is held)."""
        copied = 0
        while copied < _DRAIN_MAX:
            try:
                chunk = os.read(self._pipe, _CHUNK)
            except BlockingIOError:
                return
            copied += len(chunk)
            self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        if self._log is None:
            os.write(self._own, chunk)
            return
        if self._room <= 0:
            return  # over the cap: dropped
        kept = chunk[: self._room]
        os.write(self._log, kept)
        self._room -= len(kept)
        if self._room <= 0:
            note = f"\n[engine] this run's log reached its cap of {self._cap} bytes; the rest"
            os.write(self._log, f"{note} of its output is dropped\n".encode())


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """Set `extra` in os.environ for the duration, then restore what was there."""
    before = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(handler: Callable[..., Any], job: dict[str, Any], output: Output) -> dict[str, Any]:
    """Run one job and return the reply for the runner."""
    reply: dict[str, Any] = {"id": job["id"], "attempt": job.get("attempt", 1)}
    cap = job.get("log_cap") or DEFAULT_LOG_CAP
    with output.to(job["log_path"], cap), environment(job.get("env", {})):
        if job.get("attempt", 1) > 1:
            print(f"--- attempt {job['attempt']} ---", flush=True)
        return {**reply, **outcome(lambda: call(handler, job["inputs"]))}


def keep(path: str | None, reply: dict[str, Any]) -> None:
    """Write the reply to `path` atomically, for a control plane that lost the socket."""
    if path:
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(reply, f)
        os.replace(tmp, path)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """Write one message line to the runner."""
    sock.sendall(json.dumps(message).encode() + b"\n")


def serve(sock: socket.socket, spec: str, output: Output) -> int:
    """Import the handler, report readiness, then run jobs until the socket closes."""
    try:
        handler = load_handler(spec)
    except BaseException as exc:  # any failure to import is reported, not raised
        traceback.print_exc()
        send(sock, {"ready": False, "error": f"cannot import {spec}: {describe(exc)}"})
        return 1
    send(sock, {"ready": True})
    unread: tuple[str | None, dict[str, Any]] | None = None
    try:
        with sock.makefile("rb") as lines:
            for line in lines:
                unread = None  # a job comes only once the last reply was read
                job = json.loads(line)
                if job.get("stop"):
                    return 0
                reply = execute(handler, job, output)
                unread = (job.get("result_path"), reply)
                send(sock, reply)
    except OSError:  # the control plane is gone: it may not have read the last reply
        pass
    if unread is not None:
        keep(*unread)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m engine.backends.local.worker`."""
    parser = argparse.ArgumentParser(prog="python -m engine.backends.local.worker")
    parser.add_argument("--fd", type=int, required=True, help="The socket to the runner.")
    parser.add_argument("handler", help="The task's handler, module:function.")
    args = parser.parse_args(argv)
    # Line-buffered, so that prints and child processes' output interleave in run logs.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with socket.socket(fileno=args.fd) as sock:
        return serve(sock, args.handler, Output())


if __name__ == "__main__":
    sys.exit(main())
