"""The supervisor: keeps one process per app running, healthy and recorded in the state.

Each app is a small state machine; every transition goes through `_change_state`, which
checks the edge and writes the state database:

    STOPPED ──start──▶ STARTING ──healthy──▶ RUNNING ──exited──▶ BACKOFF ──delay──▶ STARTING
                          │  └──unhealthy (restart)──────────────────▲   └─too many─▶ FAILED
                          └──unhealthy (start)──▶ FAILED               │
                                  RUNNING ──probes fail──▶ UNHEALTHY ──killed──┘
    any but STOPPED ──stop──▶ STOPPING ──gone──▶ STOPPED

STOPPING is shown as "running" by `status()` (the process is still up and may still be
answering); the state database records "stopping" as it is, so a control plane killed in
the middle of a stop leaves the truth behind.

A running app's health route is probed every `health_interval` seconds; after
`health_failures` failures in a row (a stopped or wedged process, one out of file
descriptors) it is UNHEALTHY: it is killed, and restarted like a crashed one.

A crashed app is restarted after a back-off (0.5 s doubling up to 30 s; a process that
stayed up longer than 60 s starts the count again) and is FAILED after 10 quick failures
in a row. Side effects (spawn, stop, health probe, clock) go through `Effects`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.backends.local import procs
from engine.backends.local.procs import ProcessHandle
from engine.errors import ApplyError
from engine.state import AppRecord, State

PORT = "{port}"
"""Written in `ProcessSpec.argv`, replaced by the app's port (e.g. `["--port", PORT]`)."""

FD = "{fd}"
"""With `ProcessSpec.listen`: replaced by the fd of the app's listening socket, which the
supervisor holds and hands to every version, so the app's address never changes."""

HEALTH_PORT = "{health_port}"
"""With `ProcessSpec.listen`: replaced by a private port of this version alone, where the
supervisor checks its health before any request of the shared socket depends on it."""

_WATCH_INTERVAL = 0.1
_PROBE_INTERVAL = 0.1


class AppState(enum.Enum):
    """The states of one supervised app."""

    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = AppState
TRANSITIONS: Mapping[AppState, frozenset[AppState]] = {
    _S.STOPPED: frozenset({_S.STARTING}),
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.FAILED, _S.STOPPING}),
    _S.RUNNING: frozenset({_S.UNHEALTHY, _S.BACKOFF, _S.STOPPING}),
    _S.UNHEALTHY: frozenset({_S.BACKOFF, _S.STOPPING}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.FAILED, _S.STOPPING}),
    _S.STOPPING: frozenset({_S.STOPPED}),
    _S.FAILED: frozenset({_S.STARTING, _S.STOPPING}),
}
"""Every allowed edge of the state machine."""


class HealthCheckError(ApplyError):
    """Raised when an app does not answer its health check in time; carries its log tail."""

    def __init__(self, name: str, reason: str, log_tail: str) -> None:
        self.name = name
        self.log_tail = log_tail
        message = f"app {name!r} {reason}"
        if log_tail:
            message += "; the end of its log:\n" + log_tail
        super().__init__(message)


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one app. `port=None` means any free port, picked by the supervisor.

    `env` may hold secret values: it is given to the process and never recorded.
    `config_json` is the app's non-secret config, recorded in the state as `spec_json`.
    With `listen`, the supervisor binds the app's socket itself and passes it to each
    version (see FD and HEALTH_PORT); without, the process binds PORT itself.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    hash: str
    port: int | None = None
    health_path: str = "/health"
    health_timeout: float = 30.0
    log_path: Path | None = None
    config_json: str = "{}"
    listen: bool = False


@dataclass(frozen=True)
class Backoff:
    """When to restart a crashed app, and when to give up."""

    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0
    max_failures: int = 10

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows `failures` failures in a row."""
        return min(self.cap, self.initial * 2 ** max(failures - 1, 0))


class Effects:
    """The supervisor's side effects: processes, HTTP and the clock. Swap it in tests."""

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        pass_fds: Sequence[int] = (),
    ) -> ProcessHandle:
        """Start a process in its own group, giving it the fds in `pass_fds`."""
        return procs.spawn(argv, env, cwd, log, pass_fds=pass_fds)

    def listen(self, port: int | None) -> socket.socket:
        """A listening socket on 127.0.0.1:`port` (any free port if None)."""
        return procs.listen(port)

    async def stop(self, handle: ProcessHandle, grace: float) -> None:
        """Stop a process group without blocking the event loop."""
        await asyncio.to_thread(handle.stop, grace)

    def exited(self, handle: ProcessHandle) -> bool:
        """Whether the process has gone."""
        return handle.exited()

    def free_port(self) -> int:
        """A free port on 127.0.0.1."""
        return procs.pick_free_port()

    async def probe(self, url: str) -> bool:
        """True if GET `url` (plain HTTP on loopback) answers 200 within two seconds.

        One request line and one status line need no HTTP client; httpx here cost the
        control plane 5 MiB and a TLS context.
        """
        address = urllib.parse.urlsplit(url)
        try:
            return await asyncio.wait_for(_status_is_200(address), timeout=2.0)
        except (OSError, TimeoutError, ValueError):
            return False

    def now(self) -> float:
        """A monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait."""
        await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        """Nothing to release: each probe opens and closes its own connection."""


async def _status_is_200(address: urllib.parse.SplitResult) -> bool:
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        target = address.path or "/"
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()  # b"HTTP/1.1 200 OK\r\n"
        parts = status_line.split(maxsplit=2)
        return len(parts) >= 2 and parts[1] == b"200"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class _App:
    spec: ProcessSpec
    state: AppState
    port: int | None = None
    handle: ProcessHandle | None = None
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    watcher: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    listener: socket.socket | None = None
    health_port: int | None = None
    failure: str = ""  # why the current version last failed, for the console


class Supervisor:
    """Starts, watches, replaces and stops app processes, and records them in `state`.

    All methods run on one event loop. Operations on one app are serialised; different
    apps may be started concurrently (e.g. with `asyncio.gather`).
    """

    def __init__(
        self,
        state: State,
        logs_dir: Path,
        *,
        effects: Effects | None = None,
        backoff: Backoff = Backoff(),
        stop_grace: float = 5.0,
        health_interval: float = 5.0,
        health_failures: int = 3,
    ) -> None:
        self.state = state
        self.logs_dir = logs_dir
        self.effects = effects or Effects()
        self.backoff = backoff
        self.stop_grace = stop_grace
        self.health_interval = health_interval
        self.health_failures = health_failures
        self._apps: dict[str, _App] = {}

    # public API

    async def start(self, spec: ProcessSpec) -> None:
        """Start an app and wait until it is healthy; raise HealthCheckError if it is not.

        A failed start leaves nothing running and the app FAILED.
        """
        app = self._apps.setdefault(spec.name, _App(spec, _S.STOPPED))
        async with app.lock:
            if app.state not in (_S.STOPPED, _S.FAILED):
                raise ValueError(f"app {spec.name!r} is already {app.state.value}; use replace()")
            await self._start_locked(app, spec)

    async def replace(self, spec: ProcessSpec) -> None:
        """Run `spec` instead of the app's current version.

        A listening app's new version starts on the same socket (its URL does not change)
        and is checked on a private port; an app that binds its own port gets a new one when
        it has no fixed `port`. Either way the old version is stopped only once the new one
        is healthy; if the new one fails, the old one keeps serving and the state is
        unchanged. An app that binds its own fixed port must be stopped first; if the new
        version then fails, the old one is started again.
        """
        app = self._apps.setdefault(spec.name, _App(spec, _S.STOPPED))
        async with app.lock:
            if app.state in (_S.STOPPED, _S.FAILED):
                await self._start_locked(app, spec)
            elif spec.port is None or spec.listen:
                await self._replace_alongside(app, spec)
            else:
                await self._replace_in_place(app, spec)

    async def stop(self, name: str) -> None:
        """Stop an app's process group and record it STOPPED."""
        app = self._apps[name]
        async with app.lock:
            await self._stop_locked(app)

    async def stop_all(self) -> None:
        """Stop every app, concurrently."""
        await asyncio.gather(*(self.stop(name) for name in list(self._apps)))

    async def remove(self, name: str) -> None:
        """Stop an app and forget it, here and in the state."""
        await self.stop(name)
        del self._apps[name]
        self.state.delete_app(name)

    async def aclose(self) -> None:
        """Stop watching (the apps keep running, to be adopted later) and release resources."""
        for app in self._apps.values():
            await self._cancel_watcher(app)
            self._release(app)  # the running versions hold their own copies
        await self.effects.aclose()

    async def adopt(self, record: AppRecord, spec: ProcessSpec) -> None:
        """Take over an app recorded by an earlier control plane.

        If its process is still ours it is watched as RUNNING; if it is gone it is restarted
        (on its recorded port, unless `spec` fixes one) through the back-off path. An app
        recorded STOPPED or FAILED is registered as such and not started, and so is one
        recorded STOPPING whose process is gone (it was being stopped on purpose).
        """
        if record.name in self._apps:
            raise ValueError(f"app {record.name!r} is already supervised")
        recorded = _S(record.state)
        alive = procs.is_ours(record.pid, record.start_time)
        state: AppState
        if recorded in (_S.STOPPED, _S.FAILED):
            state = recorded
        elif recorded is _S.STOPPING and not alive:
            state = _S.STOPPED
        else:
            state = _S.RUNNING if alive else _S.BACKOFF
        port = spec.port or record.port
        app = _App(spec, state, port=port, restarts=record.restarts)
        self._apps[spec.name] = app
        if state is _S.RUNNING and record.pid is not None and record.start_time is not None:
            log = self._log_path(spec)
            app.handle = ProcessHandle.adopt(record.pid, record.start_time, log)
            app.started_at = self.effects.now()
            app.watcher = asyncio.create_task(self._watch(app))
        elif state is _S.BACKOFF:
            app.watcher = asyncio.create_task(self._watch(app, delay=0.0))
        self._record(app)

    def status(self) -> list[dict[str, object]]:
        """Each app as `engine status --json` shows it: name, state, url, port, pid, restarts."""
        return [self._status(app) for _, app in sorted(self._apps.items())]

    def failure(self, name: str) -> str:
        """Why the app's current version last exited, failed its health check or did not
        start ("" if it has not failed since it was deployed)."""
        return self._apps[name].failure

    def hash(self, name: str) -> str:
        """The hash of the version the app runs (or last ran)."""
        return self._apps[name].spec.hash

    def app_state(self, name: str) -> AppState:
        """The app's current state."""
        return self._apps[name].state

    # the state machine

    def _change_state(self, app: _App, new: AppState) -> None:
        if new not in TRANSITIONS[app.state]:
            raise RuntimeError(
                f"app {app.spec.name!r}: no transition {app.state.value} -> {new.value}"
            )
        app.state = new
        self._record(app)

    def _record(self, app: _App) -> None:
        handle = app.handle
        shown = app.state not in (_S.STOPPED, _S.FAILED)
        port = app.port if shown else None
        self.state.put_app(
            AppRecord(
                name=app.spec.name,
                hash=app.spec.hash,
                state=app.state.value,
                port=port,
                pid=handle.pid if handle else None,
                start_time=handle.start_time if handle else None,
                restarts=app.restarts,
                url=_url(port),
                spec_json=app.spec.config_json,
            )
        )

    def _status(self, app: _App) -> dict[str, object]:
        shown = _S.RUNNING if app.state is _S.STOPPING else app.state
        port = app.port if shown not in (_S.STOPPED, _S.FAILED) else None
        return {
            "name": app.spec.name,
            "state": shown.value,
            "url": _url(port),
            "port": port,
            "pid": app.handle.pid if app.handle else None,
            "restarts": app.restarts,
        }

    # processes

    def _log_path(self, spec: ProcessSpec) -> Path:
        return spec.log_path or self.logs_dir / f"{spec.name}.log"

    def _spawn(
        self, spec: ProcessSpec, port: int, listener: socket.socket | None = None
    ) -> tuple[ProcessHandle, int]:
        """Start one version; return its handle and the port its health is checked on."""
        log = self._log_path(spec)
        if listener is None:
            argv = [arg.replace(PORT, str(port)) for arg in spec.argv]
            return self.effects.spawn(argv, spec.env, spec.cwd, log), port
        health = self.effects.free_port()
        fd = listener.fileno()
        argv = [arg.replace(FD, str(fd)).replace(HEALTH_PORT, str(health)) for arg in spec.argv]
        return self.effects.spawn(argv, spec.env, spec.cwd, log, pass_fds=(fd,)), health

    def _health_url(self, app: _App) -> str:
        """Where the running version answers its health check: its own port if it has one."""
        return f"http://127.0.0.1:{app.health_port or app.port}{app.spec.health_path}"

    def _note(self, app: _App, what: str) -> None:
        """Say in the app's log what the supervisor did to it, and why."""
        line = f"engine: app {app.spec.name!r} {what}; restarting it\n"
        with contextlib.suppress(OSError), open(self._log_path(app.spec), "a") as log:
            log.write(line)

    def _hold(self, app: _App, port: int | None) -> socket.socket:
        """The app's listening socket, bound now if the supervisor does not hold it yet.

        A control plane started after another one died holds no socket for the apps it
        adopted: it binds a second one on the same port (SO_REUSEPORT, same user only) and
        the old version's closes when that version exits.
        """
        if app.listener is None or (port is not None and port != app.port):
            app.listener = self.effects.listen(port)
        app.port = app.listener.getsockname()[1]
        return app.listener

    def _release(self, app: _App) -> None:
        if app.listener is not None:
            app.listener.close()
            app.listener = None

    async def _start_locked(self, app: _App, spec: ProcessSpec) -> None:
        app.spec, app.restarts, app.failures, app.failure = spec, 0, 0, ""
        if spec.listen:
            self._hold(app, spec.port or app.port)
        else:
            app.port = spec.port or self.effects.free_port()
        self._change_state(app, _S.STARTING)
        try:
            await self._launch(app)
        except HealthCheckError as exc:
            app.failure = str(exc)
            self._change_state(app, _S.FAILED)
            raise
        self._change_state(app, _S.RUNNING)
        app.watcher = asyncio.create_task(self._watch(app))

    async def _stop_locked(self, app: _App) -> None:
        await self._cancel_watcher(app)
        if app.state is _S.STOPPED:
            return
        self._change_state(app, _S.STOPPING)
        if app.handle is not None:
            await self.effects.stop(app.handle, self.stop_grace)
            app.handle = None
        self._release(app)
        self._change_state(app, _S.STOPPED)

    async def _launch(self, app: _App) -> None:
        """Spawn the app's process (recorded at once), then wait until it is healthy."""
        assert app.port is not None
        listener = self._hold(app, app.port) if app.spec.listen else None
        app.handle, probe = self._spawn(app.spec, app.port, listener)
        app.health_port = probe
        app.started_at = self.effects.now()
        self._record(app)
        try:
            await self._wait_healthy(app.spec, app.handle, probe)
        except BaseException:
            await self.effects.stop(app.handle, self.stop_grace)
            app.handle = None
            raise

    async def _wait_healthy(self, spec: ProcessSpec, handle: ProcessHandle, port: int) -> None:
        url = f"http://127.0.0.1:{port}{spec.health_path}"
        deadline = self.effects.now() + spec.health_timeout
        while not await self.effects.probe(url):
            if self.effects.exited(handle):
                raise HealthCheckError(spec.name, "exited before it was healthy", handle.log_tail())
            if self.effects.now() >= deadline:
                reason = f"did not answer 200 on {url} within {spec.health_timeout:g} s"
                raise HealthCheckError(spec.name, reason, handle.log_tail())
            await self.effects.sleep(_PROBE_INTERVAL)

    async def _replace_alongside(self, app: _App, spec: ProcessSpec) -> None:
        """Start the new version beside the old one and stop the old one once the new one is
        healthy. A listening app's new version shares the old one's socket (the same URL);
        another app's gets a new port."""
        old_listener, old_port = app.listener, app.port
        if spec.listen:
            listener: socket.socket | None = self._hold(app, spec.port or app.port)
            port = app.port
            assert port is not None
        else:
            listener, port = None, self.effects.free_port()
            while port == app.port:
                port = self.effects.free_port()
        handle, probe = self._spawn(spec, port, listener)
        try:
            await self._wait_healthy(spec, handle, probe)
        except BaseException:
            await self.effects.stop(handle, self.stop_grace)
            if listener is not old_listener:  # a socket bound for this version alone
                self._release(app)
                app.listener, app.port = old_listener, old_port
            raise
        if old_listener is not None and listener is not old_listener:
            old_listener.close()
        await self._cancel_watcher(app)
        old = app.handle
        app.spec, app.port, app.handle, app.health_port = spec, port, handle, probe
        app.restarts, app.failures, app.started_at = 0, 0, self.effects.now()
        app.failure = ""
        # The old version may have been between restarts, or given up, meanwhile.
        if app.state in (_S.BACKOFF, _S.FAILED):
            self._change_state(app, _S.STARTING)
        if app.state is _S.STARTING:
            self._change_state(app, _S.RUNNING)
        self._record(app)
        app.watcher = asyncio.create_task(self._watch(app))
        if old is not None:
            await self.effects.stop(old, self.stop_grace)

    async def _replace_in_place(self, app: _App, spec: ProcessSpec) -> None:
        old_spec = app.spec
        await self._stop_locked(app)
        try:
            await self._start_locked(app, spec)
        except HealthCheckError:
            with contextlib.suppress(HealthCheckError):
                await self._start_locked(app, old_spec)
            raise

    async def _cancel_watcher(self, app: _App) -> None:
        if app.watcher is not None:
            app.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app.watcher
            app.watcher = None

    # watching

    async def _watch(self, app: _App, delay: float | None = None) -> None:
        """Keep the app up: wait for its process to exit, restart it after a back-off, repeat.

        With `delay` set, restart first (an adopted app whose process is gone).
        """
        while True:
            if delay is None:
                delay = await self._until_exit(app)
            if not await self._restart(app, delay):
                return
            delay = None

    async def _until_exit(self, app: _App) -> float:
        """Wait for the process to exit, or to fail its health check too often (then end
        it); count the failure and return the back-off delay."""
        failed, next_probe = 0, self.effects.now() + self.health_interval
        why = ""
        while app.handle is not None and not self.effects.exited(app.handle):
            await self.effects.sleep(_WATCH_INTERVAL)
            if self.effects.now() < next_probe:
                continue
            healthy = await self.effects.probe(self._health_url(app))
            failed, next_probe = (
                0 if healthy else failed + 1,
                self.effects.now() + self.health_interval,
            )
            if failed >= self.health_failures and app.handle is not None:
                self._change_state(app, _S.UNHEALTHY)
                why = f"did not answer its health check {failed} times in a row"
                self._note(app, why)
                await self.effects.stop(app.handle, self.stop_grace)
        if not why:
            code = app.handle.exit_code if app.handle is not None else None
            why = "exited" if code is None else f"exited with code {code}"
        app.failure = why
        if self.effects.now() - app.started_at > self.backoff.reset_after:
            app.failures = 0
        app.failures += 1
        app.handle = None
        self._change_state(app, _S.BACKOFF)
        return self.backoff.delay(app.failures)

    async def _restart(self, app: _App, delay: float) -> bool:
        """Restart after `delay`, retrying with back-off; False once the app is FAILED."""
        while app.failures < self.backoff.max_failures:
            await self.effects.sleep(delay)
            app.restarts += 1
            self._change_state(app, _S.STARTING)
            try:
                await self._launch(app)
            except HealthCheckError as exc:
                app.failure = str(exc)
                app.failures += 1
                self._change_state(app, _S.BACKOFF)
                delay = self.backoff.delay(app.failures)
                continue
            self._change_state(app, _S.RUNNING)
            return True
        self._change_state(app, _S.FAILED)
        return False


def _url(port: int | None) -> str | None:
    return f"http://127.0.0.1:{port}" if port is not None else None
