"""The control plane's side of one worker process: spawn it, hand it jobs, end it.

Each worker runs in its own session (process group), so ending it also ends whatever the
user's code started. Jobs and replies travel over a socket pair passed as an extra fd.
A worker is known by its pid and start time (`/proc/<pid>/stat`), so that a restarted
control plane can tell it from an unrelated process that reused the pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import engine
from engine.backends.local import procs

READY_TIMEOUT = 60.0
"""Seconds a new worker may take to import its handler."""

LINE_LIMIT = 64 * 2**20
"""Largest job or reply (bytes of JSON) the runner accepts from a worker."""

_ENGINE_ROOT = str(Path(engine.__file__).resolve().parent.parent)


class WorkerStartError(Exception):
    """Raised when a worker cannot be started or cannot import its handler."""


class WorkerLost(Exception):
    """Raised when a worker ends (or is ended) before it replies."""


def kill_group(pid: int, start_time: int) -> None:
    """SIGKILL the process group led by `pid`, if that process is still the one we mean."""
    if procs.is_ours(pid, start_time):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def worker_env(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """The task's environment with the spec folder first on PYTHONPATH.

    The folder holding `engine` goes last, so that a worker starts from a source checkout
    as well as from an installed package.
    """
    paths = [str(cwd), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    if _ENGINE_ROOT not in paths:
        paths.append(_ENGINE_ROOT)
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class WorkerProcess:
    """A started worker that has imported its handler and waits for jobs."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.start_time = procs.process_start_time(process.pid) or 0
        self._reader = reader
        self._writer = writer

    @property
    def pid(self) -> int:
        """The worker's pid (also its process group id)."""
        return self.process.pid

    @property
    def exited(self) -> bool:
        """Whether the worker has ended (and been reaped)."""
        return self.process.returncode is not None

    @classmethod
    async def spawn(
        cls, handler: str, *, cwd: Path, env: dict[str, str], output: Path
    ) -> WorkerProcess:
        """Start a worker for `handler`; its own stdout/stderr (outside runs) go to `output`."""
        parent, child = socket.socketpair()
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            with open(output, "ab") as out:
                process = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "engine.backends.local.worker"),
                    *("--fd", str(child.fileno()), handler),
                    cwd=cwd,
                    env=worker_env(env, cwd),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(child.fileno(),),
                    start_new_session=True,
                )
            reader, writer = await asyncio.open_unix_connection(sock=parent, limit=LINE_LIMIT)
        except BaseException as exc:  # cancelled too: asyncio ends the process it started
            parent.close()
            if isinstance(exc, OSError):
                raise WorkerStartError(f"cannot start a worker: {exc}") from exc
            raise
        finally:
            child.close()
        worker = cls(process, reader, writer)
        try:
            hello = await asyncio.wait_for(worker._receive(), READY_TIMEOUT)
            if not hello.get("ready"):
                raise WorkerStartError(str(hello.get("error")))
        except BaseException as exc:
            worker.kill()
            await worker.close()
            if isinstance(exc, WorkerLost | TimeoutError):
                reason = str(exc) or f"no answer within {READY_TIMEOUT:g} s"
                raise WorkerStartError(f"worker did not start: {reason}") from exc
            raise
        return worker

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Send one job and return the worker's reply; raises WorkerLost if it ends first."""
        try:
            self._writer.write(json.dumps(job).encode() + b"\n")
            await self._writer.drain()
        except OSError:
            raise WorkerLost(await self._exit_status()) from None
        return await self._receive()

    def kill(self) -> None:
        """Send SIGKILL to the worker's process group (a no-op once it has been reaped)."""
        self._signal(signal.SIGKILL)

    async def stop(self, grace: float = 2.0) -> None:
        """End an idle worker: close its socket, SIGTERM, then SIGKILL after `grace` s."""
        with contextlib.suppress(OSError):
            self._writer.write(b'{"stop": true}\n')  # it exits at once, keeping no reply
        self._writer.close()
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.kill()
        await self.close()

    async def close(self) -> None:
        """Release the socket of an ending worker and wait for it to exit."""
        self._writer.close()
        await self.process.wait()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def _signal(self, sig: signal.Signals) -> None:
        # returncode is set once the process is reaped; after that its pid may be reused.
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def _receive(self) -> dict[str, Any]:
        try:
            line = await self._reader.readline()
        except (OSError, ValueError) as exc:  # ValueError: a line over LINE_LIMIT
            self.kill()
            raise WorkerLost(f"{type(exc).__name__}: {exc}") from exc
        if not line.endswith(b"\n"):
            raise WorkerLost(await self._exit_status())
        return json.loads(line)

    async def _exit_status(self) -> str:
        code = await self.process.wait()
        if code < 0:
            return f"worker lost (killed by {signal.Signals(-code).name})"
        return f"worker lost (exit code {code})"
