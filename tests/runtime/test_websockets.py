import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine.runtime.websockets import PING, PONG
from tests.runtime import declare as rt
from tests.runtime.conftest import RunAPI, TestClient

COUNTER = {"n": 0}


def tick() -> dict[str, int]:
    COUNTER["n"] += 1
    return {"n": COUNTER["n"]}


def three() -> Iterator[int]:
    yield from (1, 2, 3)


async def async_three() -> AsyncIterator[dict[str, int]]:
    for i in range(3):
        yield {"i": i}


async def shout(websocket: WebSocket) -> None:
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())


@pytest.fixture
def make_client(run_api: RunAPI) -> Iterator[Callable[..., TestClient]]:
    """Factory: an app with one WebSocket at `path` with the given options."""
    clients: list[TestClient] = []

    def make(path: str = "/ws", **options: Any) -> TestClient:
        app = rt.create_app(project="shop", name="sockets")
        rt.add_websocket(app, path=path, **options)
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_echo(make_client: Callable[..., TestClient]) -> None:
    with make_client(pattern="echo").websocket_connect("/ws") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "Echo: hello"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"


def test_broadcast_reaches_everyone_sender_too(make_client: Callable[..., TestClient]) -> None:
    client = make_client(pattern="broadcast")
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        a.send_text("ping?")  # b is connected once a's frame arrives back at b below
        assert a.receive_text() == "ping?"
        b.send_text("hi all")
        assert a.receive_text() == "hi all"
        assert b.receive_text() in {"ping?", "hi all"}


def test_broadcast_keeps_binary_frames_binary_and_skips_a_peer_that_left(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(pattern="broadcast")
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as c:
        with client.websocket_connect("/ws") as gone:
            gone.send_text("here")
            assert a.receive_text() == c.receive_text() == "here"
        a.send_bytes(b"\x00\xff")  # after `gone` closed: a and c still get it
        assert a.receive_bytes() == b"\x00\xff"
        assert c.receive_bytes() == b"\x00\xff"


def test_chat_reaches_the_others_in_the_room(make_client: Callable[..., TestClient]) -> None:
    client = make_client(path="/chat/{room}", pattern="chat")
    with (
        client.websocket_connect("/chat/a") as a1,
        client.websocket_connect("/chat/a") as a2,
        client.websocket_connect("/chat/b") as b1,
    ):
        b1.send_text("anyone?")
        a1.send_text("marco")
        assert a2.receive_text() == "marco"
        a2.send_text("polo")
        assert a1.receive_text() == "polo"
        b1.send_text("still alone")
        a1.send_text("done")
        assert a2.receive_text() == "done"


@pytest.mark.parametrize(
    ("source", "expected"),
    [(three, [1, 2, 3]), (async_three, [{"i": 0}, {"i": 1}, {"i": 2}])],
    ids=["generator", "async-generator"],
)
def test_stream_generators(
    make_client: Callable[..., TestClient], source: Any, expected: list
) -> None:
    with make_client(pattern="stream", source=source).websocket_connect("/ws") as ws:
        assert [ws.receive_json() for _ in expected] == expected


def test_stream_calls_a_function_every_interval(make_client: Callable[..., TestClient]) -> None:
    COUNTER["n"] = 0
    with make_client(pattern="stream", source=tick, interval=0.01).websocket_connect("/ws") as ws:
        assert [ws.receive_json() for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_task_runner(make_client: Callable[..., TestClient], run_api: RunAPI) -> None:
    with make_client(pattern="task-runner").websocket_connect("/ws") as ws:
        ws.send_text("not json")
        assert ws.receive_json() == {
            "error": 'message is not JSON: expected a JSON object {"task": NAME, "inputs": {...}}'
        }
        ws.send_json({"task": "nope", "inputs": {}})
        assert ws.receive_json() == {"error": "unknown task 'nope'"}
        ws.send_json({"task": "add-one", "inputs": {"x": 1}})
        started = ws.receive_json()
        [run] = run_api.started()
        assert started == {"id": run["id"], "url": run["url"], "status": "started"}
        assert ws.receive_json() == {"id": run["id"], "status": "running"}
        assert ws.receive_json() == {"id": run["id"], "status": "succeeded", "outputs": {"y": 2}}
        ws.send_json({"task": "fail"})
        started = ws.receive_json()
        assert started["status"] == "started"
        assert ws.receive_json() == {"id": started["id"], "status": "running"}
        assert ws.receive_json() == {"id": started["id"], "status": "failed", "error": "boom"}


def test_custom_handler(make_client: Callable[..., TestClient]) -> None:
    with make_client(handler=shout).websocket_connect("/ws") as ws:
        ws.send_text("hey")
        assert ws.receive_text() == "HEY"


def test_max_message_closes_with_1009(make_client: Callable[..., TestClient]) -> None:
    with make_client(pattern="echo", max_message=4).websocket_connect("/ws") as ws:
        ws.send_text("1234")
        assert ws.receive_text() == "Echo: 1234"
        ws.send_text("12345")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
    assert info.value.code == 1009


def test_max_connections_closes_with_1013(make_client: Callable[..., TestClient]) -> None:
    client = make_client(pattern="echo", max_connections=1)
    with client.websocket_connect("/ws") as first:
        with client.websocket_connect("/ws") as second, pytest.raises(WebSocketDisconnect) as info:
            second.receive_text()
        assert info.value.code == 1013
        first.send_text("still here")
        assert first.receive_text() == "Echo: still here"
    with client.websocket_connect("/ws") as again:
        again.send_text("a")
        assert again.receive_text() == "Echo: a"


def test_heartbeat_drops_a_silent_client(make_client: Callable[..., TestClient]) -> None:
    with make_client(pattern="echo", heartbeat=0.05).websocket_connect("/ws") as ws:
        assert ws.receive_text() == PING
        assert ws.receive_text() == PING
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
    assert info.value.code == 1001


def test_heartbeat_keeps_a_client_that_answers(make_client: Callable[..., TestClient]) -> None:
    with make_client(pattern="echo", heartbeat=0.05).websocket_connect("/ws") as ws:
        for _ in range(4):
            assert ws.receive_text() == PING
            ws.send_text(PONG)
        ws.send_text("alive")
        frames = [ws.receive_text(), ws.receive_text()]
        assert "Echo: alive" in frames


def test_pattern_and_handler_are_exclusive() -> None:
    app = rt.create_app(project="shop", name="sockets")
    with pytest.raises(ValueError, match="exactly one of pattern and handler"):
        rt.add_websocket(app, path="/ws", pattern="echo", handler=shout)


def test_task_runner_message_must_be_an_object(make_client: Callable[..., TestClient]) -> None:
    with make_client(pattern="task-runner").websocket_connect("/ws") as ws:
        ws.send_text(json.dumps(["add-one"]))
        assert ws.receive_json() == {
            "error": 'expected a JSON object {"task": NAME, "inputs": {...}}'
        }
        ws.send_json({"task": "add-one", "inputs": [1]})
        assert ws.receive_json()["error"].startswith("inputs must be an object")
