"""Issue 13's patterns in the runtime, under real uvicorn processes and real clients:
named endpoints and app-to-app credentials, rate limits, run replies, catch-all and Svix
webhooks, task-runner allow lists, clean WebSocket closes, Pydantic parameters and input
defaults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from engine.runtime.credentials import mint
from tests.runtime.conftest import ProcessServer, RunAPI

pytestmark = pytest.mark.slow

BACKEND = """
from tests.runtime import declare as rt
from engine.runtime.app import Bearer


def seen(request) -> dict:
    return {"authorization": request.headers.get("authorization")}


app = rt.create_app(project="shop", name="backend")
rt.add_handler_route(app, method="GET", path="/seen", handler=seen,
                     auth=Bearer(secret_env="BACKEND_TOKEN", apps=("frontend",)))
"""

FRONTEND = """
import engine.runtime
from tests.runtime import declare as rt
from engine.runtime.app import Bearer


async def through_client() -> dict:
    async with engine.runtime.client("backend") as backend:
        answer = await backend.get("/seen")
    return {"status": answer.status_code, "endpoint": engine.runtime.endpoint("backend")}


app = rt.create_app(project="shop", name="frontend")
rt.add_proxy_route(app, method="GET", path="/seen", target="backend",
                   auth=Bearer(secret_env="FRONT_TOKEN"))
rt.add_proxy_route(app, method="GET", path="/forwarded", target="backend", target_path="/seen",
                   forward_auth=True)
rt.add_handler_route(app, method="GET", path="/client", handler=through_client)
rt.add_proxy_route(app, method="GET", path="/client-header", target="backend", target_path="/seen")
"""

KEY = "backend-secret"
MINTED = mint(KEY, "shop", "backend", "frontend")


@pytest.fixture(scope="module")
def pair(process_server: Callable[..., ProcessServer]) -> tuple[ProcessServer, ProcessServer]:
    backend = process_server(BACKEND, env={"BACKEND_TOKEN": KEY})
    credentials = {"backend": {"kind": "bearer", "header": "Authorization", "env": "CRED"}}
    frontend = process_server(
        FRONTEND,
        env={
            # Named endpoint: only the user's variable and ENGINE_ENDPOINTS, no BACKEND_ENDPOINT.
            "APP1_URL": backend.url,
            "ENGINE_ENDPOINTS": json.dumps({"backend": backend.url}),
            "ENGINE_CREDENTIALS": json.dumps(credentials),
            "CRED": MINTED,
            "FRONT_TOKEN": "front",
        },
    )
    return backend, frontend


def test_the_callee_answers_401_without_credentials_and_403_with_wrong_ones(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    backend, _ = pair
    assert httpx.get(backend.url + "/seen").status_code == 401
    other = mint(KEY, "shop", "backend", "someone-else")
    for token in ("nope", other, mint("other-secret", "shop", "backend", "frontend")):
        answer = httpx.get(backend.url + "/seen", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403
    for token in (KEY, MINTED):
        answer = httpx.get(backend.url + "/seen", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_a_proxy_sends_the_pairs_credential_never_the_callers_own(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    _, frontend = pair
    answer = httpx.get(frontend.url + "/seen", headers={"Authorization": "Bearer front"})
    assert answer.status_code == 200
    assert answer.json() == {"authorization": f"Bearer {MINTED}"}
    assert httpx.get(frontend.url + "/seen").status_code == 401  # the frontend's own auth
    forged = httpx.get(frontend.url + "/client-header", headers={"Authorization": "Bearer x"})
    assert forged.json() == {"authorization": f"Bearer {MINTED}"}


def test_forward_auth_passes_the_callers_header_on(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    _, frontend = pair
    mine = httpx.get(frontend.url + "/forwarded", headers={"Authorization": f"Bearer {KEY}"})
    assert mine.json() == {"authorization": f"Bearer {KEY}"}
    wrong = httpx.get(frontend.url + "/forwarded", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 403  # forwarded as given, so the callee refuses it


def test_runtime_client_has_the_named_endpoint_and_the_credentials(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    backend, frontend = pair
    answer = httpx.get(frontend.url + "/client").json()
    assert answer == {"status": 200, "endpoint": backend.url}
    assert MINTED not in frontend.log.read_text() + backend.log.read_text()


LIMITED = """
from tests.runtime import declare as rt
from engine.runtime.app import RateLimit


def hello() -> dict:
    return {"hello": True}


app = rt.create_app(project="shop", name="limited",
                    rate_limit=RateLimit(requests=6, per=60.0, by="header:X-Tenant"))
rt.add_handler_route(app, method="GET", path="/", handler=hello)
rt.add_handler_route(app, method="GET", path="/tight", handler=hello,
                     rate_limit=RateLimit(requests=2, per=60.0, by="global"))
rt.add_webhook(app, path="/hook", provider="github", secret_envs=("GH",),
               rate_limit=RateLimit(requests=1, per=60.0, by="client"))
rt.add_websocket(app, path="/echo", pattern="echo",
                 rate_limit=RateLimit(requests=2, per=60.0, by="client"))
"""


@pytest.fixture(scope="module")
def limited(process_server: Callable[..., ProcessServer]) -> ProcessServer:
    return process_server(LIMITED, env={"GH": "s"})


def test_a_route_over_its_limit_gets_429_with_retry_after(limited: ProcessServer) -> None:
    tenant = {"X-Tenant": "route"}
    codes = [httpx.get(limited.url + "/tight", headers=tenant).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    over = httpx.get(limited.url + "/tight", headers=tenant)
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.json()["detail"] == "rate limit exceeded (2 per 1m)"


def test_the_app_limit_counts_each_header_value_apart_and_spares_health(
    limited: ProcessServer,
) -> None:
    for tenant in ("a", "b"):
        codes = [
            httpx.get(limited.url + "/", headers={"X-Tenant": tenant}).status_code for _ in range(7)
        ]
        assert codes == [200] * 6 + [429]
    assert all(httpx.get(limited.url + "/health").status_code == 200 for _ in range(10))


def test_a_webhook_over_its_limit_gets_429_before_its_signature_is_checked(
    limited: ProcessServer,
) -> None:
    headers = {"X-Tenant": "hook", "X-GitHub-Event": "push"}
    first = httpx.post(limited.url + "/hook", content=b"{}", headers=headers)
    assert first.status_code == 401  # unsigned: counted, then refused
    assert httpx.post(limited.url + "/hook", content=b"{}", headers=headers).status_code == 429


def test_websocket_messages_over_the_limit_get_an_error_message(limited: ProcessServer) -> None:
    async def talk() -> list[str]:
        url = limited.ws_url + "/echo"
        async with websockets.connect(url, additional_headers={"X-Tenant": "ws"}) as ws:
            for text in ("a", "b", "c"):
                await ws.send(text)
            return [str(await ws.recv()) for _ in range(3)]

    first, second, third = asyncio.run(talk())
    assert (first, second) == ("Echo: a", "Echo: b")
    assert json.loads(third)["error"] == "rate limit exceeded (2 per 1m)"


def test_a_handshake_over_the_app_limit_is_closed_with_1008(limited: ProcessServer) -> None:
    async def connect() -> int | None:
        headers = {"X-Tenant": "handshake"}
        for _ in range(6):
            httpx.get(limited.url + "/", headers=headers)
        async with websockets.connect(limited.ws_url + "/echo", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(connect()) == 1008


RUNS = """
from pydantic import BaseModel

from tests.runtime import declare as rt
from engine.runtime.app import Respond, Run


class Order(BaseModel):
    item: str
    quantity: int = 1


def order(body: Order) -> dict:
    return {"item": body.item, "total": body.quantity * 2}


app = rt.create_app(project="shop", name="runs")
rt.add_run_route(app, method="POST", path="/flyte", run=Run(
    task="add-one", respond=Respond(200, {"run_id": "${{ run.id }}", "url": "${{ run.url }}"})))
rt.add_run_route(app, method="POST", path="/waited", run=Run(
    task="add-one", inputs={"x": "${{ body.x }}"}, wait=True,
    respond=Respond(201, {"y": "${{ run.outputs.y }}", "status": "${{ run.status }}"})))
rt.add_run_route(app, method="POST", path="/optional", run=Run(
    task="fail", inputs={"x": "${{ body.x }}", "y": "${{ body.y }}", "z": "${{ body.z }}"}))
rt.add_run_route(app, method="POST", path="/fails", run=Run(
    task="fail", wait=True, failed=Respond(502, {"error": "${{ run.error }}"})))
rt.add_handler_route(app, method="POST", path="/order", handler=order)
rt.add_websocket(app, path="/tasks", pattern="task-runner", allow=("add-one",))
rt.add_websocket(app, path="/echo", pattern="echo")
rt.add_websocket(app, path="/room/{room}", pattern="chat")
"""


@pytest.fixture(scope="module")
def runs(process_server: Callable[..., ProcessServer], run_api_server: RunAPI) -> ProcessServer:
    return process_server(
        RUNS,
        env={
            "ENGINE_API_URL": run_api_server.url,  # type: ignore[attr-defined]
            "ENGINE_API_TOKEN": run_api_server.token,
        },
    )


def test_a_run_reply_answers_flytes_run_id_and_url_with_200(
    runs: ProcessServer, run_api: RunAPI
) -> None:
    answer = httpx.post(runs.url + "/flyte", json={"x": 1})
    (run,) = run_api.started()
    assert answer.status_code == 200
    assert answer.json() == {"run_id": run["id"], "url": run["url"]}


def test_a_waited_reply_sees_the_outputs(runs: ProcessServer, run_api: RunAPI) -> None:
    answer = httpx.post(runs.url + "/waited", json={"x": 4}, timeout=10)
    assert (answer.status_code, answer.json()) == (201, {"y": 5, "status": "succeeded"})


def test_a_failed_waited_run_gets_the_status_the_spec_chose(
    runs: ProcessServer, run_api: RunAPI
) -> None:
    answer = httpx.post(runs.url + "/fails", json={}, timeout=10)
    assert (answer.status_code, answer.json()) == (502, {"error": "boom"})


def test_an_input_the_body_lacks_is_left_out_for_the_tasks_default(
    runs: ProcessServer, run_api: RunAPI
) -> None:
    assert httpx.post(runs.url + "/optional", json={"y": 2, "z": None}).status_code == 202
    (run,) = run_api.started()
    # x is left out (not null), so the run API fills in its default; an explicit null stays.
    assert run["inputs"] == {"y": 2, "z": None}


def test_a_pydantic_body_is_validated_into_the_model(runs: ProcessServer) -> None:
    good = httpx.post(runs.url + "/order", json={"item": "tea", "quantity": 3})
    assert good.json() == {"item": "tea", "total": 6}
    bad = httpx.post(runs.url + "/order", json={"quantity": "many"})
    assert bad.status_code == 422
    locations = sorted(tuple(e["loc"]) for e in bad.json()["detail"])
    assert locations == [("body", "item"), ("body", "quantity")]


def test_the_task_runner_starts_only_allowed_tasks(runs: ProcessServer, run_api: RunAPI) -> None:
    async def ask() -> dict:
        async with websockets.connect(runs.ws_url + "/tasks") as ws:
            await ws.send(json.dumps({"task": "slow", "inputs": {}}))
            return json.loads(await ws.recv())

    answer = asyncio.run(ask())
    assert answer == {"error": "task 'slow' is not allowed here; allowed: add-one"}
    assert run_api.started() == []


def test_clients_that_close_leave_no_traceback_in_the_log(runs: ProcessServer) -> None:
    async def visit(path: str) -> None:
        async with websockets.connect(runs.ws_url + path) as ws:
            await ws.send("hi")
            if path == "/echo":
                assert await ws.recv() == "Echo: hi"

    for path in ("/echo", "/room/a", "/echo"):
        asyncio.run(visit(path))
    time.sleep(0.3)  # the server handles the close after the client has returned
    log = runs.log.read_text()
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log


SVIX = """
from tests.runtime import declare as rt
from engine.runtime.app import Respond

app = rt.create_app(project="shop", name="svix")
rt.add_webhook(app, path="/hook", provider="standard", secret_envs=("WHSEC",),
               events={"a.created": Respond(200, {"which": "named"}),
                       "*": Respond(200, {"which": "catch-all", "event": "${{ event }}"})})
"""
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def signed(prefix: str, body: bytes, msg_id: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": stamp,
        f"{prefix}-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_svix_headers_and_the_catch_all_event(
    process_server: Callable[..., ProcessServer],
) -> None:
    server = process_server(SVIX, env={"WHSEC": WHSEC})
    deliveries = [
        ("svix", b'{"type": "a.created"}', {"which": "named"}),
        ("svix", b'{"type": "b.deleted"}', {"which": "catch-all", "event": "b.deleted"}),
        ("webhook", b'{"type": "c.x"}', {"which": "catch-all", "event": "c.x"}),
    ]
    for i, (prefix, body, expected) in enumerate(deliveries):
        answer = httpx.post(
            server.url + "/hook", content=body, headers=signed(prefix, body, f"m{i}")
        )
        assert (answer.status_code, answer.json()) == (200, expected)
    tampered = signed("svix", b'{"type": "x"}', "m9")
    answer = httpx.post(server.url + "/hook", content=b'{"type": "y"}', headers=tampered)
    assert answer.status_code == 401
