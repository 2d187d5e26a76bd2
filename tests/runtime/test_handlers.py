from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from engine.runtime import app as rt
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


def test_query_is_converted_by_type(make_client: Callable[..., TestClient]) -> None:
    client = make_client(add_one, query={"x": {"type": "integer"}})
    response = client.get("/", params={"x": "41"})
    assert (response.status_code, response.json()) == (200, {"y": 42})


def test_arrays_booleans_numbers_and_defaults(make_client: Callable[..., TestClient]) -> None:
    query = {
        "tag": {"type": "array", "items": {"type": "integer"}},
        "flag": {"type": "boolean"},
        "ratio": {"type": "number", "default": 0.25},
    }
    client = make_client(tags, query=query)
    response = client.get("/?tag=1&tag=2&flag=yes")
    assert response.json() == {"tag": [1, 2], "flag": True, "ratio": 0.25}


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("/", {"type": "missing", "loc": ["query", "x"], "msg": "Field required", "input": None}),
        (
            "/?x=abc",
            {
                "type": "int_parsing",
                "loc": ["query", "x"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            },
        ),
        (
            "/?x=-1",
            {
                "type": "minimum",
                "loc": ["query", "x"],
                "msg": "-1 is less than the minimum of 0",
                "input": -1,
            },
        ),
    ],
    ids=["missing", "not-an-integer", "below-minimum"],
)
def test_bad_query_is_422(make_client: Callable[..., TestClient], url: str, error: dict) -> None:
    client = make_client(add_one, query={"x": {"type": "integer", "minimum": 0}})
    response = client.get(url)
    assert (response.status_code, response.json()) == (422, {"detail": [error]})


def test_body_and_path_and_request_are_passed(make_client: Callable[..., TestClient]) -> None:
    body = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    client = make_client(async_echo, method="POST", path="/hello/{name}", body=body)
    response = client.post("/hello/ada", json={"a": 1})
    assert response.json() == {"name": "ada", "body": {"a": 1}, "method": "POST"}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}),
        (
            b"{nope",
            {"type": "json_invalid", "loc": ["body", 1], "msg": "JSON decode error", "input": {}},
        ),
        (
            b'{"a": "x"}',
            {
                "type": "type",
                "loc": ["body", "a"],
                "msg": "'x' is not of type 'integer'",
                "input": "x",
            },
        ),
        (
            b"{}",
            {
                "type": "required",
                "loc": ["body", "a"],
                "msg": "'a' is a required property",
                "input": {},
            },
        ),
    ],
    ids=["empty", "not-json", "wrong-type", "missing-field"],
)
def test_bad_body_is_422(
    make_client: Callable[..., TestClient], content: bytes, error: dict
) -> None:
    body = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    client = make_client(async_echo, method="POST", path="/hello/{name}", body=body)
    response = client.post(
        "/hello/ada", content=content, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (422, {"detail": [error]})


def test_kwargs_handler_gets_everything_but_request(make_client: Callable[..., TestClient]) -> None:
    client = make_client(takes_all, path="/items/{item}", query={"q": {"type": "string"}})
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


def test_openapi_shows_parameters_and_body(make_client: Callable[..., TestClient]) -> None:
    body = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client = make_client(
        async_echo, method="POST", path="/hello/{name}", body=body, query={"q": {"type": "integer"}}
    )
    operation = client.get("/openapi.json").json()["paths"]["/hello/{name}"]["post"]
    assert operation["parameters"] == [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "q", "in": "query", "required": True, "schema": {"type": "integer"}},
    ]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == body
    assert client.get("/docs").status_code == 200
