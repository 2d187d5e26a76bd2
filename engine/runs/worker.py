"""The worker process: `python -m engine.runs.worker --fd N module:function`.

Started by the runner in the task's folder and environment. It imports the handler once,
then serves jobs over the socket `N` (never stdout/stderr: user code prints there), one
JSON object per line each way:

    worker -> runner   {"ready": true} | {"ready": false, "error": "..."}   once, at start
    runner -> worker   {"id", "inputs", "log_path", "attempt", "env"}          per run
    worker -> runner   {"id", "ok": true, "outputs"} | {"id", "ok": false, "error"}

During a run, fds 1 and 2 point at the run's log file; a failure's traceback goes there,
while `error` holds only the exception's type and message. The worker exits when the
socket closes.
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
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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


@contextmanager
def redirect_output(log_path: str) -> Iterator[None]:
    """Point fds 1 and 2 (and so sys.stdout/stderr and child processes) at the log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log, *saved):
            os.close(fd)


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
    reply: dict[str, Any] = {"id": job["id"]}
    with redirect_output(job["log_path"]), environment(job.get("env", {})):
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
            send(sock, execute(handler, json.loads(line)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m engine.runs.worker`."""
    parser = argparse.ArgumentParser(prog="python -m engine.runs.worker")
    parser.add_argument("--fd", type=int, required=True, help="The socket to the runner.")
    parser.add_argument("handler", help="The task's handler, module:function.")
    args = parser.parse_args(argv)
    # Line-buffered, so that prints and child processes' output interleave in run logs.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with socket.socket(fileno=args.fd) as sock:
        try:
            return serve(sock, args.handler)
        except BrokenPipeError:
            return 0


if __name__ == "__main__":
    sys.exit(main())
