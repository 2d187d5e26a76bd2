"""The runtime under a real uvicorn process, driven by real HTTP and WebSocket clients."""

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.runtime.conftest import ProcessServer, RunAPI

pytestmark = pytest.mark.slow

SOURCE = """
from fastapi import Request, Response

from tests.runtime import declare as rt
from engine.runtime import app as runtime
from engine.runtime.app import ApiKey, Bearer, Run


def add_one(x: int) -> dict:
    return {"y": x + 1}


app = rt.create_app(project="shop", name="real")
GET_ROOT = runtime.handler(add_one)


@app.get("/")  # as a generated module declares it
async def get_root(request: Request, x: int) -> Response:
    return await GET_ROOT(request, query={"x": x})


rt.add_run_route(app, method="POST", path="/run", run=Run(task="add-one", wait=True))
rt.add_webhook(app, path="/gh", provider="github", secret_envs=("GH_SECRET",),
               events={"push": Run(task="add-one", inputs={"x": 1})}, max_body=1000)
rt.add_websocket(app, path="/echo", pattern="echo", max_connections=1)
rt.add_websocket(app, path="/private", pattern="echo", auth=Bearer(secret_env="API_TOKEN"))
rt.add_websocket(app, path="/tasks", pattern="task-runner")
rt.add_websocket(app, path="/broadcast", pattern="broadcast")
"""


@pytest.fixture(scope="module")
def server(process_server: Callable[..., ProcessServer], run_api_server: RunAPI) -> ProcessServer:
    """One uvicorn process for this module (starting Python with FastAPI takes seconds)."""
    return process_server(
        SOURCE,
        env={
            "GH_SECRET": "s",
            "API_TOKEN": "tok",
            "ENGINE_API_URL": run_api_server.url,  # type: ignore[attr-defined]
            "ENGINE_API_TOKEN": run_api_server.token,
        },
    )


def test_http_routes(server: ProcessServer, run_api: RunAPI) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "healthy"}
    assert httpx.get(server.url + "/", params={"x": 1}).json() == {"y": 2}
    assert httpx.get(server.url + "/", params={"x": "a"}).status_code == 422
    response = httpx.post(server.url + "/run", json={"x": 9}, timeout=10)
    assert (response.status_code, response.json()["outputs"]) == (200, {"y": 10})


def test_streamed_webhook_body_is_cut_off_at_max_body(
    server: ProcessServer, run_api: RunAPI
) -> None:
    """Chunked upload without Content-Length: 413 arrives before the body is finished."""
    port = int(server.url.rsplit(":", 1)[1])
    chunk = b"a" * 600
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /gh HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n\r\n"
        )
        for _ in range(2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""  # the terminating chunk is never sent: the server must answer anyway
        while not answer.endswith(b"}") and (data := sock.recv(4096)):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413")
    assert answer.endswith(b'{"detail":"body over 1000 bytes"}')
    assert run_api.started() == []


def test_signed_webhook_starts_a_run(server: ProcessServer, run_api: RunAPI) -> None:
    body = b'{"after": "x"}'
    sig = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": "1"}
    assert httpx.post(server.url + "/gh", content=body, headers=headers).status_code == 202
    assert httpx.post(server.url + "/gh", content=body, headers=headers).json() == {
        "status": "duplicate",
        "delivery": "1",
    }
    assert len(run_api.started()) == 1


def test_websockets_over_the_wire(server: ProcessServer) -> None:
    async def scenario() -> None:
        async with websockets.connect(server.ws_url + "/echo") as ws:
            await ws.send("hi")
            assert await ws.recv() == "Echo: hi"
            async with websockets.connect(server.ws_url + "/echo") as second:
                with pytest.raises(ConnectionClosed) as info:
                    await second.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        headers = {"Authorization": "Bearer tok"}
        async with websockets.connect(server.ws_url + "/private", additional_headers=headers) as ws:
            await ws.send("secret")
            assert await ws.recv() == "Echo: secret"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.ws_url + "/private"):
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_task_runner_over_the_wire(server: ProcessServer, run_api: RunAPI) -> None:
    async def scenario() -> list[dict]:
        async with websockets.connect(server.ws_url + "/tasks") as ws:
            await ws.send("{")
            messages = [json.loads(await ws.recv())]
            await ws.send(json.dumps({"task": "add-one", "inputs": {"x": 2}}))
            while (
                "outputs" not in messages[-1] and "error" not in messages[-1] or len(messages) < 2
            ):
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return messages

    messages = asyncio.run(scenario())
    assert messages[0]["error"].startswith("message is not JSON")
    assert [m["status"] for m in messages[1:]] == ["started", "running", "succeeded"]
    assert messages[-1]["outputs"] == {"y": 3}


def _never_reading_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then reads nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"GET /broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_client_that_stops_reading_does_not_stall_a_broadcast(server: ProcessServer) -> None:
    """Megabytes more than the slow client's buffers hold: the others still get every frame."""
    frames, size = 300, 64 * 1024

    async def broadcast() -> int:
        url = server.ws_url + "/broadcast"
        async with (
            websockets.connect(url, max_size=None) as fast,
            websockets.connect(url, max_size=None, max_queue=None) as sender,
        ):
            slow = _never_reading_client(int(server.url.rsplit(":", 1)[1]))
            try:
                await asyncio.sleep(0.2)  # the slow client is among the peers
                for n in range(frames):
                    await sender.send(f"{n:06d}" + "x" * size)
                got = 0
                async with asyncio.timeout(30):  # a stalled broadcast never gets there
                    while got < frames:
                        got += (await fast.recv())[:6] == f"{got:06d}"
                return got
            finally:
                slow.close()

    assert asyncio.run(broadcast()) == frames
    log = server.log.read_text()
    assert "reads too slowly; it misses broadcast frames" in log  # its backlog was full
    assert "Traceback" not in log
