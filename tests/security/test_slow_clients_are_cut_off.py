"""Item 10 (the runtime's side): a client that sends its headers or its body slowly is cut
off, a WebSocket is not, and past the connection limit the app answers 503 rather than
running out of file descriptors. A real uvicorn with the app launcher's arguments."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

import httpx
import pytest
import websockets

from engine.runtime.serving import UVICORN_ARGS
from tests.e2e.conftest import wait_for
from tests.runtime.conftest import ProcessServer, process_server  # noqa: F401 (fixture)

SOURCE = """
from tests.runtime import declare as rt
from engine.runtime.app import Respond

app = rt.create_app(project="p", name="slow")
rt.add_respond_route(app, method="POST", path="/echo", respond=Respond(200, {"ok": True}))
rt.add_websocket(app, path="/ws", pattern="echo")
"""


def _with(args: tuple[str, ...], option: str, value: str) -> tuple[str, ...]:
    index = args.index(option)
    return (*args[:index], option, value, *args[index + 2 :])


@pytest.fixture(scope="module")
def strict(process_server: Callable[..., ProcessServer]) -> ProcessServer:  # noqa: F811
    """Deadlines of 1 s on headers and bodies, and at most 5 connections."""
    env = {"ENGINE_HEADER_TIMEOUT": "1", "ENGINE_BODY_TIMEOUT": "1"}
    args = _with(UVICORN_ARGS, "--limit-concurrency", "5")
    return process_server(SOURCE, env=env, args=args)


def _port(server: ProcessServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: ProcessServer, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=30)
    sock.sendall(first_bytes)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"",  # connected, never sends a byte
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never finished
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",  # body never finished
    ],
    ids=["silent", "slow-headers", "slow-body"],
)
def test_a_slow_request_is_cut_off(strict: ProcessServer, first_bytes: bytes) -> None:
    with _connect(strict, first_bytes) as sock:
        assert b"200 OK" not in _answer(sock)  # closed by the server, not answered


@pytest.fixture(scope="module")
def patient_with_bodies(process_server: Callable[..., ProcessServer]) -> ProcessServer:  # noqa: F811
    """A deadline of 1 s on headers, of 60 s on bodies."""
    env = {"ENGINE_HEADER_TIMEOUT": "1", "ENGINE_BODY_TIMEOUT": "60"}
    return process_server(SOURCE, env=env, args=UVICORN_ARGS)


def test_a_late_request_after_a_slow_body_on_the_same_connection_is_cut_off(
    patient_with_bodies: ProcessServer,
) -> None:
    """A body sent over more than the header deadline (within its own) is served; the next
    request on the connection then gets the header deadline again, although it falls
    before the body deadline set earlier: the connection is closed by the nearer one (well
    within the socket's 10 s timeout), not the farther."""
    request = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with _connect(patient_with_bodies, request + b"Content-Length: 2\r\n\r\n{") as sock:
        sock.settimeout(10)
        time.sleep(1.5)  # past the header deadline, long before the body's
        sock.sendall(b"}")
        first = b""
        while b'{"ok":true}' not in first:
            first += sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 OK")
        sock.sendall(request)  # the next request's headers, never finished
        assert _answer(sock) == b""  # closed without an answer (else recv times out)


def test_prompt_requests_and_websockets_are_served(strict: ProcessServer) -> None:
    response = httpx.post(strict.url + "/echo", json={}, trust_env=False)
    assert response.json() == {"ok": True}

    async def talk() -> None:
        async with websockets.connect(strict.ws_url + "/ws") as ws:
            await asyncio.sleep(2.5)  # longer than both deadlines: a WebSocket is not cut
            await ws.send("still here")
            assert await ws.recv() == "Echo: still here"

    asyncio.run(talk())


def test_past_the_connection_limit_the_app_answers_503(strict: ProcessServer) -> None:
    async def main() -> None:
        # WebSockets are never cut by the deadlines: five of them hold every slot.
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(5):
                await stack.enter_async_context(websockets.connect(strict.ws_url + "/ws"))
            async with httpx.AsyncClient(base_url=strict.url, trust_env=False) as http:
                assert (await http.get("/health")).status_code == 503

    asyncio.run(main())
    # Slots free up once the server sees the WebSockets closed.
    wait_for(lambda: httpx.get(strict.url + "/health").status_code == 200, interval=0.1)
