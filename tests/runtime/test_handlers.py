from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from tests.runtime import declare as rt
from tests.runtime.conftest import TestClient


def add_one(x: int) -> dict[str, int]:
    return {"y": x + 1}


async def async_echo(name: str, body: Any, request: Request) -> dict[str, Any]:
    return {"name": name, "body": body, "method": request.method}


def takes_all(**kwargs: Any) -> dict[str, Any]:
    return {"keys": sorted(kwargs)}


def tags(tag: list[int], flag: bool, ratio: float = 0.5) -> dict[str, Any]:
    return {"tag": tag, "flag": flag, "ratio": ratio}


def explode() -> None:
    raise RuntimeError("secret internals")


def not_found() -> None:
    raise HTTPException(404, "nothing here")


def plain() -> PlainTextResponse:
    return PlainTextResponse("hello", 201)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Factory: an app with one handler route, and a TestClient over it."""
    clients: list[TestClient] = []

    def make(
        handler: Callable[..., Any], method: str = "GET", path: str = "/", **kw: Any
    ) -> TestClient:
        app: FastAPI = rt.create_app(project="shop", name="api")
        rt.add_handler_route(app, method=method, path=path, handler=handler, **kw)
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_health_route(make_client: Callable[..., TestClient]) -> None:
    response = make_client(add_one).get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "healthy"})


HANDLERS = """
def add_one(x):
    return {"y": x + 1}


async def async_echo(name, body, request):
    return {"name": name, "body": body, "method": request.method}


def takes_all(**kwargs):
    return {"keys": sorted(kwargs)}


def tags(tag, flag, ratio=0.5):
    return {"tag": tag, "flag": flag, "ratio": ratio}
"""
BODY = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}


@pytest.fixture
def compiled(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Factory: the generated module of an app with one handler route, and a TestClient."""
    clients: list[TestClient] = []

    def make(handler: str, method: str = "GET", path: str = "/", **route: Any) -> TestClient:
        folder = tmp_path / f"p{len(clients)}"
        folder.mkdir()
        spec = {"routes": [{"method": method, "path": path, "handler": handler, **route}]}
        app = rt.compiled_app(folder, spec, {"handlers.py": HANDLERS})
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class Body(BaseModel):
    """What the compiler generates for BODY, written by hand."""

    model_config = ConfigDict(strict=True, extra="allow")
    a: int


def fastapi_reference() -> FastAPI:
    """The routes of these tests as a FastAPI user writes them, for their 422 bodies."""
    app = FastAPI()

    @app.get("/")
    async def get_root(x: Annotated[int, Query(ge=0)]) -> dict[str, int]:
        return {"y": x + 1}

    @app.post("/hello/{name}")
    async def post_hello(name: str, body: Body) -> dict[str, Any]:
        return {}

    return app


def test_query_is_converted_by_type(compiled: Callable[..., TestClient]) -> None:
    client = compiled("handlers:add_one", query={"x": {"type": "integer"}})
    response = client.get("/", params={"x": "41"})
    assert (response.status_code, response.json()) == (200, {"y": 42})


def test_arrays_booleans_numbers_and_defaults(compiled: Callable[..., TestClient]) -> None:
    query = {
        "tag": {"type": "array", "items": {"type": "integer"}},
        "flag": {"type": "boolean"},
        "ratio": {"type": "number", "default": 0.25},
    }
    client = compiled("handlers:tags", query=query)
    response = client.get("/?tag=1&tag=2&flag=yes")
    assert response.json() == {"tag": [1, 2], "flag": True, "ratio": 0.25}


@pytest.mark.parametrize("url", ["/", "/?x=abc", "/?x=-1"], ids=["missing", "not-int", "below"])
def test_bad_query_is_fastapis_own_422(compiled: Callable[..., TestClient], url: str) -> None:
    client = compiled("handlers:add_one", query={"x": {"type": "integer", "minimum": 0}})
    response = client.get(url)
    expected = TestClient(fastapi_reference()).get(url)
    assert response.status_code == expected.status_code == 422
    assert response.json() == expected.json()


def test_body_and_path_and_request_are_passed(compiled: Callable[..., TestClient]) -> None:
    client = compiled("handlers:async_echo", method="POST", path="/hello/{name}", body=BODY)
    response = client.post("/hello/ada", json={"a": 1})
    assert response.json() == {"name": "ada", "body": {"a": 1}, "method": "POST"}


@pytest.mark.parametrize(
    "content",
    [b"", b"{nope", b'{"a": "x"}', b'{"a": "1"}', b"{}"],
    ids=["empty", "not-json", "wrong-type", "a-string-is-not-an-integer", "missing-field"],
)
def test_bad_body_is_fastapis_own_422(compiled: Callable[..., TestClient], content: bytes) -> None:
    client = compiled("handlers:async_echo", method="POST", path="/hello/{name}", body=BODY)
    headers = {"Content-Type": "application/json"}
    response = client.post("/hello/ada", content=content, headers=headers)
    expected = TestClient(fastapi_reference()).post("/hello/ada", content=content, headers=headers)
    assert response.status_code == expected.status_code == 422
    assert response.json() == expected.json()


def test_kwargs_handler_gets_everything_but_request(compiled: Callable[..., TestClient]) -> None:
    client = compiled("handlers:takes_all", path="/items/{item}", query={"q": {"type": "string"}})
    assert client.get("/items/7?q=s").json() == {"keys": ["body", "item", "q"]}


def test_raising_handler_is_500_without_traceback(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    response = make_client(explode).get("/")
    assert response.status_code == 500
    expected = f"Internal error in handler {explode.__module__}:explode"
    assert response.json() == {"detail": expected}
    assert "secret internals" not in response.text
    assert "Traceback" in caplog.text and "secret internals" in caplog.text


def test_http_exception_and_responses_pass_through(make_client: Callable[..., TestClient]) -> None:
    response = make_client(not_found).get("/")
    assert (response.status_code, response.json()) == (404, {"detail": "nothing here"})
    response = make_client(plain).get("/")
    assert (response.status_code, response.text) == (201, "hello")


def test_openapi_shows_parameters_and_body(compiled: Callable[..., TestClient]) -> None:
    body = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client = compiled(
        "handlers:async_echo",
        method="POST",
        path="/hello/{name}",
        body=body,
        query={"q": {"type": "integer"}},
    )
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/hello/{name}"]["post"]
    assert [
        (p["name"], p["in"], p["required"], p["schema"]["type"]) for p in operation["parameters"]
    ] == [
        ("name", "path", True, "string"),
        ("q", "query", True, "integer"),
    ]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert model["properties"]["a"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert client.get("/docs").status_code == 200
