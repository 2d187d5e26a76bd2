"""WebSocket endpoints: echo, broadcast, chat, stream, task-runner, or the user's handler.

Decisions:
* `auth` is checked before the handshake is accepted; a refused client gets close code
  1008 (over a real server that is the handshake answered 403, as ASGI servers do).
* `max_connections` is checked after accepting, so the client receives close code 1013
  ("try again later") instead of a bare refused handshake.
* `max_message` (bytes of a text or binary frame) over -> close 1009.
* `heartbeat`: ASGI gives applications no access to protocol pings, so the heartbeat is a
  message: every N seconds the server sends the text `{"type": "ping"}`; any frame from
  the client counts as an answer (`{"type": "pong"}` is swallowed, never passed on). A
  client that leaves two pings unanswered is closed with 1001.
* A custom handler gets the socket already accepted (it must not call `accept()`), and
  reads its own frames: `heartbeat` and `max_message` do not apply to it.
* task-runner runs the requests of one socket concurrently; each run's messages keep
  their order. `allow` limits the tasks it may start: another name is answered
  `{"error": ...}` and starts nothing.
* `rate_limit` counts the frames clients send to a pattern: a frame over the limit is
  dropped and answered `{"error": "rate limit exceeded ...", "retry_after": seconds}`. On a
  custom handler (which reads its own frames) it counts connections: one over the limit
  is closed with 1008.
* A client that closed the socket is not sent a close frame back: the closing handshake is
  over, and sending on it is what made the ASGI server log "Exception in ASGI application".
* broadcast and chat never wait for one client: a send that would wait (the client reads
  slower than frames come) finishes in a task of its own, and the frames sent to that client
  meanwhile queue behind it, at most BACKLOG of them; past that, it misses frames (logged).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import anyio
from fastapi.encoders import jsonable_encoder
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from engine.runtime import jsonbody
from engine.runtime.auth import Auth, resolve
from engine.runtime.ratelimit import Limiter
from engine.runtime.runclient import FINAL_STATES, RunAPIError, RunAPIUnreachable, RunClient
from engine.runtime.shared import Shared

__all__ = ["PATTERNS", "PING", "PONG", "SocketEndpoint"]

log = logging.getLogger("engine.runtime")
PATTERNS = ("echo", "broadcast", "chat", "stream", "task-runner")
PING = '{"type": "ping"}'
PONG = '{"type": "pong"}'
BACKLOG = 128
"""Frames a broadcast or chat queues for a client still reading an earlier one."""
Frame = str | bytes


class Connection:
    """One accepted socket with the endpoint's limits applied to what it receives."""

    def __init__(
        self, websocket: WebSocket, max_message: int | None, limiter: Limiter | None = None
    ) -> None:
        self.websocket = websocket
        self.max_message = max_message
        self.limiter = limiter
        self.unanswered = 0
        self.backlog: deque[Message] | None = None  # behind a send waiting for the client
        self.missing = False  # the backlog overflowed during this stall (logged once)
        self.flushing: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    @property
    def open(self) -> bool:
        """Whether frames can still be sent: neither side has closed."""
        return (
            self.websocket.application_state is WebSocketState.CONNECTED
            and self.websocket.client_state is WebSocketState.CONNECTED
        )

    async def receive(self) -> Frame | None:
        """The next frame from the client, or None once the socket is closed."""
        while self.open:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            self.unanswered = 0
            frame: Frame = message["text"] if message.get("text") is not None else message["bytes"]
            size = len(frame.encode()) if isinstance(frame, str) else len(frame)
            if self.max_message is not None and size > self.max_message:
                await self.close(1009)
                return None
            if frame == PONG:
                continue
            wait = await self.limiter.hit(self.websocket) if self.limiter else None
            if wait is None:
                return frame
            detail = f"rate limit exceeded ({self.limiter.describe()})" if self.limiter else ""
            await self.send_json({"error": detail, "retry_after": wait})
        return None

    async def send(self, frame: Frame) -> None:
        """Send a text or binary frame (nothing if the socket is closed)."""
        if self.open:
            await self.websocket.send(_message(frame))

    def post(self, message: Message) -> None:
        """Send `message` without waiting for this client (see BACKLOG)."""
        if self.backlog is not None:
            if len(self.backlog) < BACKLOG:
                self.backlog.append(message)
            elif not self.missing:
                log.warning("a WebSocket client reads too slowly; it misses broadcast frames")
                self.missing = True
            return
        send = self.websocket.send(message)
        try:
            waiting = send.send(None)  # its first step: all of it, unless it must wait
        except StopIteration:
            return
        except Exception:  # a peer that vanished mid-send must not stop the others
            log.debug("dropping a frame to a closed peer")
            return
        self.backlog = deque()
        self.flushing = asyncio.ensure_future(self._flush(send, waiting))

    async def _flush(self, send: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            await _rest(send, waiting)
            while self.backlog and self.open:
                await self.websocket.send(self.backlog.popleft())
        except Exception:
            log.debug("dropping frames to a closed peer")
        finally:
            self.backlog = self.flushing = None
            self.missing = False

    async def send_json(self, value: Any) -> None:
        """Send `value` as one JSON text frame."""
        await self.send(json.dumps(jsonable_encoder(value), ensure_ascii=False))

    async def close(self, code: int) -> None:
        """Close with `code` unless already closed."""
        if self.open:
            await self.websocket.close(code)


class SocketEndpoint:
    """One declared WebSocket path: its options resolved, its pattern chosen."""

    def __init__(
        self,
        state: Shared,
        *,
        pattern: str | None,
        handler: Callable[[WebSocket], Awaitable[Any]] | None,
        source: Callable[..., Any] | None,
        interval: float,
        auth: Auth,
        heartbeat: float | None,
        max_message: int | None,
        max_connections: int | None,
        allow: tuple[str, ...] | None = None,
        limiter: Limiter | None = None,
        path: str = "",
    ) -> None:
        if (pattern is None) == (handler is None):
            raise ValueError("a WebSocket needs exactly one of pattern and handler")
        if pattern is not None and pattern not in PATTERNS:
            raise ValueError(f"unknown WebSocket pattern {pattern!r}: one of {PATTERNS}")
        if pattern == "stream" and source is None:
            raise ValueError("a stream WebSocket needs a source")
        if pattern == "task-runner":
            state.need_runs()
        self.state = state
        self.guard = resolve(auth, state.project, state.name)
        self.pattern = pattern
        self.handler = handler
        self.source = source
        self.interval = interval
        self.heartbeat = heartbeat
        self.max_message = max_message
        self.max_connections = max_connections
        self.allow = None if allow is None else frozenset(allow)
        self.limiter = limiter
        self.clients: set[Connection] = set()
        self.rooms: dict[str, set[Connection]] = {}
        self.gauge = None
        if state.metrics:
            from engine.runtime.metrics import websocket_gauge

            self.gauge = websocket_gauge(state.name, path)

    async def __call__(self, websocket: WebSocket) -> None:
        """The route's endpoint."""
        if self.guard.check(websocket.headers) is not None:
            await websocket.close(1008)
            return
        await websocket.accept()
        if self.handler is not None and self.limiter and await self.limiter.hit(websocket):
            await websocket.close(1008, "rate limit exceeded")
            return
        limiter = self.limiter if self.handler is None else None
        conn = Connection(websocket, self.max_message, limiter)
        if self.max_connections is not None and len(self.clients) >= self.max_connections:
            await conn.close(1013)
            return
        self.clients.add(conn)
        if self.gauge is not None:
            self.gauge.inc()
        try:
            await self._serve(conn)
        finally:
            self.clients.discard(conn)
            if self.gauge is not None:
                self.gauge.dec()
            await conn.close(1000)

    async def _serve(self, conn: Connection) -> None:
        if self.handler is not None:
            await self.handler(conn.websocket)
            return
        serve = {
            "echo": self._echo,
            "broadcast": self._broadcast,
            "chat": self._chat,
            "stream": self._stream,
            "task-runner": self._task_runner,
        }[self.pattern or ""]
        async with anyio.create_task_group() as group:
            if self.heartbeat:
                group.start_soon(self._beat, conn, group.cancel_scope)
            await serve(conn)
            group.cancel_scope.cancel()

    async def _beat(self, conn: Connection, scope: anyio.CancelScope) -> None:
        assert self.heartbeat is not None  # only started with a heartbeat
        while conn.open:
            await anyio.sleep(self.heartbeat)
            if conn.unanswered >= 2:
                log.info("WebSocket client missed two heartbeats; dropping it")
                await conn.close(1001)
                scope.cancel()
                return
            conn.unanswered += 1
            await conn.send(PING)

    async def _echo(self, conn: Connection) -> None:
        while (frame := await conn.receive()) is not None:
            await conn.send(f"Echo: {frame}" if isinstance(frame, str) else frame)

    async def _broadcast(self, conn: Connection) -> None:
        while (frame := await conn.receive()) is not None:
            await _send_all(list(self.clients), frame)

    async def _chat(self, conn: Connection) -> None:
        params = conn.websocket.path_params
        room = str(params.get("room", next(iter(params.values()), "")))
        members = self.rooms.setdefault(room, set())
        members.add(conn)
        try:
            while (frame := await conn.receive()) is not None:
                await _send_all([c for c in members if c is not conn], frame)
        finally:
            members.discard(conn)
            if not members:
                self.rooms.pop(room, None)

    async def _stream(self, conn: Connection) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, conn, group.cancel_scope)
            try:
                await self._produce(conn)
            except Exception:
                log.exception("stream source of %s raised", conn.websocket.url.path)
                await conn.close(1011)
            group.cancel_scope.cancel()

    async def _produce(self, conn: Connection) -> None:
        source = self.source
        assert source is not None  # checked in __init__
        if inspect.isasyncgenfunction(source):
            async for value in source():
                await conn.send_json(value)
        elif inspect.isgeneratorfunction(source):
            async for value in iterate_in_threadpool(source()):
                await conn.send_json(value)
        else:
            while conn.open:
                if inspect.iscoroutinefunction(source):
                    value = await source()
                else:
                    value = await run_in_threadpool(source)
                await conn.send_json(value)
                await anyio.sleep(self.interval)

    async def _task_runner(self, conn: Connection) -> None:
        runs = self.state.runs()
        assert runs is not None  # need_runs() was called in __init__
        async with anyio.create_task_group() as group:
            while (frame := await conn.receive()) is not None:
                request = _task_request(frame, self.allow)
                if isinstance(request, str):
                    await conn.send_json({"error": request})
                else:
                    group.start_soon(_follow, conn, runs, *request)
            group.cancel_scope.cancel()


def _message(frame: Frame) -> Message:
    """The ASGI message sending `frame` (what WebSocket.send_text/send_bytes build)."""
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


async def _send_all(conns: list[Connection], frame: Frame) -> None:
    # One message for every peer, each posted with one call: the layers a peer's send went
    # through (Connection.send, send_text, a new message each) took 1.0 us a peer; the
    # rest of a peer's cost is the server's send and the socket write (docs/performance.md,
    # websocket). A task per send, the obvious way not to wait for a slow peer, doubled
    # the broadcast's CPU: a send becomes a task only when it must wait (Connection.post).
    message = _message(frame)
    for peer in conns:
        if peer.open:
            peer.post(message)


@types.coroutine
def _rest(send: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """The rest of `send`, whose first step stopped at `waiting` (what it yielded to the
    event loop): what Python 3.12's eager tasks do, by hand for 3.11."""
    while True:
        try:
            try:
                answer = yield waiting
            except BaseException as exc:  # cancelled while waiting: `send` sees it
                waiting = send.throw(exc)
            else:
                waiting = send.send(answer)
        except StopIteration:
            return


async def _drain(conn: Connection, scope: anyio.CancelScope) -> None:
    while await conn.receive() is not None:
        pass
    scope.cancel()


def _task_request(
    frame: Frame, allow: frozenset[str] | None = None
) -> tuple[str, dict[str, Any]] | str:
    """(task, inputs) out of a task-runner message, or the error to answer."""
    usage = 'expected a JSON object {"task": NAME, "inputs": {...}}'
    try:
        message = jsonbody.loads(frame)
    except jsonbody.BadJson:
        return f"message is not JSON: {usage}"
    if not isinstance(message, dict) or not isinstance(message.get("task"), str):
        return usage
    inputs = message.get("inputs", {})
    if not isinstance(inputs, dict):
        return f"inputs must be an object: {usage}"
    if allow is not None and message["task"] not in allow:
        return f"task {message['task']!r} is not allowed here; allowed: {', '.join(sorted(allow))}"
    return message["task"], inputs


async def _follow(conn: Connection, runs: RunClient, task: str, inputs: dict[str, Any]) -> None:
    try:
        run = await runs.start(task, inputs)
        await conn.send_json({"id": run["id"], "url": run.get("url"), "status": "started"})
        last = run["status"]
        if last not in FINAL_STATES:
            async for update in runs.events(run["id"]):
                run = update
                if run["status"] != last and run["status"] not in FINAL_STATES:
                    last = run["status"]
                    await conn.send_json({"id": run["id"], "status": last})
                if run["status"] in FINAL_STATES:
                    break
        await conn.send_json(_final(run))
    except RunAPIError as exc:
        if exc.status == 404:
            await conn.send_json({"error": f"unknown task {task!r}"})
        else:
            await conn.send_json({"error": _detail(exc.body)})
    except RunAPIUnreachable:
        await conn.send_json({"error": "run API unreachable"})
    except (WebSocketDisconnect, RuntimeError, OSError):
        log.info("task-runner client left while run messages were being sent")


def _final(run: dict[str, Any]) -> dict[str, Any]:
    if run["status"] == "succeeded":
        return {"id": run["id"], "status": "succeeded", "outputs": run.get("outputs")}
    if run["status"] in FINAL_STATES:
        return {"id": run["id"], "status": run["status"], "error": run.get("error")}
    return {"id": run["id"], "status": run["status"], "error": "run events ended early"}


def _detail(body: Any) -> str:
    """The run API's error as one line of text (SPEC: `{"error": "..."}`)."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # a 422: FastAPI's list of {loc, msg}
        return "; ".join(_located(item) for item in detail)
    return str(detail)


def _located(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(p) for p in item.get("loc", [])[2:])  # drop "body", "inputs"
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))
