"""The worker process: `python -m engine.backends.local.worker --fd N module:function`.

Started by the local task executor in the task's folder and environment. It imports the
handler once, then serves jobs over the socket `N` (never stdout/stderr: user code prints
there), one JSON object per line each way:

    worker -> executor  {"ready": true} | {"ready": false, "error": "..."}    once, at start
    executor -> worker  {"id", "inputs", "log_path", "attempt", "env",
                         "result_path", "log_cap"}                            per run
    worker -> executor  {"id", "attempt", "ok": true, "outputs"}
                      | {"id", "attempt", "ok": false, "error"}

Before replying, the worker writes the reply to `result_path` too (atomically): a control
plane killed while the run was in flight has lost the socket, and its successor reads the
result from there. The worker exits when the socket closes (or a reply cannot be sent).

During a run, fds 1 and 2 are a pipe that a thread copies into the run's log file, up to
`log_cap` bytes of file; at the cap it writes one line saying so and drops the rest. A
failure's traceback goes to the log, while `error` holds only the exception's type and
message.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_LOG_CAP = 10 * 2**20
"""Bytes a run's log file may hold (all its attempts together) unless the job says."""


def load_handler(spec: str) -> Callable[..., Any]:
    """Import `module:function` and return the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"handler {spec!r} is not of the form module:function")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"handler {spec!r} is not callable")
    return target


def describe(exc: BaseException) -> str:
    """An exception as `Type: message` (just the type when there is no message)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


DRAIN_WAIT = 1.0
"""Seconds a run's end waits for its output to reach the log; longer only when a process
the run left behind still holds the pipe (its later output still goes to this log)."""


def _copy(pipe: int, log: int, room: int, cap: int) -> None:
    """Copy `pipe` into `log` until EOF, writing at most `room` bytes, then the cap line."""
    try:
        while chunk := os.read(pipe, 65536):
            if room <= 0:
                continue  # over the cap: drain, so that writers never block
            kept = chunk[:room]
            os.write(log, kept)
            room -= len(kept)
            if room <= 0:
                note = f"\n[engine] this run's log reached its cap of {cap} bytes; the rest"
                os.write(log, f"{note} of its output is dropped\n".encode())
    finally:
        os.close(pipe)
        os.close(log)


@contextmanager
def redirect_output(log_path: str, cap: int) -> Iterator[None]:
    """Point fds 1 and 2 (and so sys.stdout/stderr and child processes) at a pipe that a
    thread copies into the log file, keeping the file within `cap` bytes."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    room = cap - os.fstat(log).st_size
    read, write = os.pipe()
    copier = threading.Thread(target=_copy, args=(read, log, room, cap), daemon=True)
    copier.start()
    try:
        os.dup2(write, 1)
        os.dup2(write, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (write, *saved):
            os.close(fd)
        copier.join(DRAIN_WAIT)


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


def call(handler: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call the handler with inputs as keyword arguments; await it if it is async."""
    result = handler(**inputs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def execute(handler: Callable[..., Any], job: dict[str, Any]) -> dict[str, Any]:
    """Run one job and return the reply for the runner."""
    reply: dict[str, Any] = {"id": job["id"], "attempt": job.get("attempt", 1)}
    cap = job.get("log_cap") or DEFAULT_LOG_CAP
    with redirect_output(job["log_path"], cap), environment(job.get("env", {})):
        if job.get("attempt", 1) > 1:
            print(f"--- attempt {job['attempt']} ---", flush=True)
        try:
            outputs = call(handler, job["inputs"])
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            return {**reply, "ok": False, "error": describe(exc)}
    try:
        json.dumps(outputs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {**reply, "ok": False, "error": f"outputs are not JSON-serialisable: {exc}"}
    return {**reply, "ok": True, "outputs": outputs}


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


def serve(sock: socket.socket, spec: str) -> int:
    """Import the handler, report readiness, then run jobs until the socket closes."""
    try:
        handler = load_handler(spec)
    except BaseException as exc:  # any failure to import is reported, not raised
        traceback.print_exc()
        send(sock, {"ready": False, "error": f"cannot import {spec}: {describe(exc)}"})
        return 1
    send(sock, {"ready": True})
    with sock.makefile("rb") as lines:
        for line in lines:
            job = json.loads(line)
            reply = execute(handler, job)
            keep(job.get("result_path"), reply)
            send(sock, reply)
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
        try:
            return serve(sock, args.handler)
        except (BrokenPipeError, ConnectionResetError):  # the control plane is gone
            return 0


if __name__ == "__main__":
    sys.exit(main())
