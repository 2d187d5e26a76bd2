from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from engine.runtime import ConfigError
from engine.runtime.app import ApiKey, Bearer, Respond
from tests.runtime import declare as rt
from tests.runtime.conftest import TestClient

BEARER = Bearer(secret_env="API_TOKEN")
API_KEY = ApiKey(header="X-API-Key", secret_env="API_KEY")


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], TestClient]]:
    """Factory: an app with a route, a plain webhook and an echo socket, all under `auth`."""
    monkeypatch.setenv("API_TOKEN", "s3cret")
    monkeypatch.setenv("API_KEY", "k3y")
    clients: list[TestClient] = []

    def make(auth: Any) -> TestClient:
        app = rt.create_app(project="shop", name="api")
        rt.add_respond_route(
            app, method="GET", path="/", respond=Respond(200, {"ok": True}), auth=auth
        )
        rt.add_webhook(
            app, path="/hook", provider="plain", action=Respond(200, {"ok": True}), auth=auth
        )
        rt.add_websocket(app, path="/echo", pattern="echo", auth=auth)
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


CASES = [
    pytest.param(None, {}, 200, None, id="none"),
    pytest.param(BEARER, {"Authorization": "Bearer s3cret"}, 200, None, id="bearer-ok"),
    pytest.param(BEARER, {}, 401, "Not authenticated", id="bearer-missing"),
    pytest.param(
        BEARER,
        {"Authorization": "Basic s3cret"},
        401,
        "Not authenticated",
        id="bearer-wrong-scheme",
    ),
    pytest.param(
        BEARER, {"Authorization": "Bearer nope"}, 403, "Invalid credentials", id="bearer-wrong"
    ),
    pytest.param(API_KEY, {"X-API-Key": "k3y"}, 200, None, id="apikey-ok"),
    pytest.param(API_KEY, {}, 401, "Missing API key in header X-API-Key", id="apikey-missing"),
    pytest.param(API_KEY, {"X-API-Key": "nope"}, 403, "Invalid credentials", id="apikey-wrong"),
]


@pytest.mark.parametrize(("auth", "headers", "status", "detail"), CASES)
def test_route_auth(
    make_client: Callable, auth: Any, headers: dict, status: int, detail: str | None
) -> None:
    response = make_client(auth).get("/", headers=headers)
    assert response.status_code == status
    assert response.json() == ({"ok": True} if detail is None else {"detail": detail})
    bearer_challenge = status == 401 and isinstance(auth, Bearer)
    assert (response.headers.get("www-authenticate") == "Bearer") is bearer_challenge


@pytest.mark.parametrize(("auth", "headers", "status", "detail"), CASES)
def test_plain_webhook_auth(
    make_client: Callable, auth: Any, headers: dict, status: int, detail: str | None
) -> None:
    response = make_client(auth).post("/hook", json={"a": 1}, headers=headers)
    assert response.status_code == status
    assert response.json() == ({"ok": True} if detail is None else {"detail": detail})


@pytest.mark.parametrize(("auth", "headers", "status", "detail"), CASES)
def test_websocket_auth(
    make_client: Callable, auth: Any, headers: dict, status: int, detail: str | None
) -> None:
    client = make_client(auth)
    if status == 200:
        with client.websocket_connect("/echo", headers=headers) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "Echo: hi"
    else:
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/echo", headers=headers),
        ):
            pass
        assert info.value.code == 1008


def test_missing_secret_stops_the_app_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.delenv("API_TOKEN_FILE", raising=False)
    app = rt.create_app(project="shop", name="api")
    with pytest.raises(ConfigError, match="API_TOKEN"):
        rt.add_respond_route(app, method="GET", path="/", respond=Respond(), auth=BEARER)


def test_an_api_key_app_accepts_the_key_minted_for_each_listed_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.runtime.auth import resolve
    from engine.runtime.credentials import mint

    monkeypatch.setenv("API_KEY", "k3y")
    guard = resolve(ApiKey("X-API-Key", "API_KEY", apps=("web", "cron")), "shop", "api")
    for caller in ("web", "cron"):
        assert guard.check({"x-api-key": mint("k3y", "shop", "api", caller)}) is None
    assert guard.check({"x-api-key": "k3y"}) is None
    for wrong in (mint("k3y", "shop", "api", "other"), mint("k3y", "shop", "other", "web")):
        denied = guard.check({"x-api-key": wrong})
        assert denied is not None and denied.status == 403
    missing = guard.check({})
    assert missing is not None and missing.status == 401


def test_a_listed_task_gets_in_with_its_own_credential_and_a_namesake_app_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.runtime.auth import resolve
    from engine.runtime.credentials import mint

    monkeypatch.setenv("API_TOKEN", "t0k")
    guard = resolve(Bearer("API_TOKEN", tasks=("nightly",)), "shop", "api")
    task = mint("t0k", "shop", "api", "nightly", "task")
    assert guard.check({"authorization": f"Bearer {task}"}) is None
    namesake = mint("t0k", "shop", "api", "nightly")  # an app called nightly: not listed
    assert namesake != task
    denied = guard.check({"authorization": f"Bearer {namesake}"})
    assert denied is not None and denied.status == 403
