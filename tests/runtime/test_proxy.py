from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.runtime import declare as rt
from tests.runtime.conftest import TestClient, ThreadServer, free_port


def upstream_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/items/{item}", methods=["GET", "POST"])
    async def item(item: str, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "item": item,
                "method": request.method,
                "query": request.url.query,
                "body": (await request.body()).decode(),
                "x-custom": request.headers.get("x-custom"),
                "host": request.headers.get("host"),
            },
            status_code=201 if request.method == "POST" else 200,
            headers={"X-Upstream": "yes"},
        )

    @app.get("/teapot")
    async def teapot() -> JSONResponse:
        return JSONResponse({"detail": "short and stout"}, 418)

    return app


@pytest.fixture
def make_client(
    thread_server: Callable[[Any], ThreadServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., TestClient]]:
    """Factory: an app proxying to a real upstream uvicorn (`down=True`: to a closed port)."""
    clients: list[TestClient] = []

    def make(*, down: bool = False, **route: Any) -> TestClient:
        url = f"http://127.0.0.1:{free_port()}" if down else thread_server(upstream_app()).url
        monkeypatch.setenv("BACKEND_ENDPOINT", url)
        app = rt.create_app(project="shop", name="front")
        rt.add_proxy_route(app, target="backend", **route)
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_forwards_path_params_query_body_and_headers(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(method="POST", path="/api/{name}", target_path="/items/{name}")
    response = client.post(
        "/api/a%20b?q=1&q=2",
        content=b'{"k": 1}',
        headers={"X-Custom": "c", "Content-Type": "application/json"},
    )
    assert response.status_code == 201
    assert response.headers["x-upstream"] == "yes"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body | {"host": None} == {
        "item": "a b",
        "method": "POST",
        "query": "q=1&q=2",
        "body": '{"k": 1}',
        "x-custom": "c",
        "host": None,
    }
    assert body["host"] != "testserver"


def test_default_target_path_is_the_request_path(make_client: Callable[..., TestClient]) -> None:
    client = make_client(method="GET", path="/items/{item}")
    assert client.get("/items/7").json()["item"] == "7"


def test_upstream_status_passes_through(make_client: Callable[..., TestClient]) -> None:
    response = make_client(method="GET", path="/teapot").get("/teapot")
    assert (response.status_code, response.json()) == (418, {"detail": "short and stout"})


def test_upstream_down_is_502(make_client: Callable[..., TestClient]) -> None:
    response = make_client(down=True, method="GET", path="/x").get("/x")
    assert (response.status_code, response.json()) == (
        502,
        {"detail": "upstream backend unreachable"},
    )
