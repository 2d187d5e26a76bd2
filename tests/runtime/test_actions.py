from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import Request, Response

from engine.runtime import ConfigError
from engine.runtime import app as runtime
from engine.runtime.app import Respond, Run
from tests.runtime import declare as rt
from tests.runtime.conftest import RunAPI, TestClient, free_port


@pytest.fixture
def make_client(run_api: RunAPI) -> Iterator[Callable[..., TestClient]]:
    """Factory: an app with one run route at POST /run/{name}, over the real run API."""
    clients: list[TestClient] = []

    def make(run: Run, **kw: Any) -> TestClient:
        app = rt.create_app(project="shop", name="api")
        rt.add_run_route(app, method="POST", path="/run/{name}", run=run, **kw)
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_run_starts_and_answers_202(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    response = make_client(Run(task="add-one")).post("/run/x", json={"x": 1})
    [run] = run_api.started("add-one")
    assert response.status_code == 202
    assert response.json() == {"id": run["id"], "url": run["url"], "status": "started"}
    assert run["inputs"] == {"x": 1}


def test_inputs_expressions(run_api: RunAPI) -> None:
    """Expressions see the values FastAPI validated: `n` is an integer."""
    app = rt.create_app(project="shop", name="api")
    start = runtime.run(app, "add-one", inputs={"x": "${{ query.n }}", "who": "${{ path.name }}"})

    @app.post("/run/{name}")
    async def post_run(request: Request, name: str, n: int) -> Response:
        return await start(request, path={"name": name}, query={"n": n})

    with TestClient(app) as client:
        client.post("/run/ada?n=4")
    assert run_api.started("add-one")[0]["inputs"] == {"x": 4, "who": "ada"}


def test_wait_answers_outputs(make_client: Callable[..., TestClient], run_api: RunAPI) -> None:
    response = make_client(Run(task="add-one", wait=True)).post("/run/x", json={"x": 41})
    [run] = run_api.started()
    assert response.status_code == 200
    assert response.json() == {
        "id": run["id"],
        "url": run["url"],
        "status": "succeeded",
        "outputs": {"y": 42},
    }


def test_wait_on_failed_run_answers_its_error(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    response = make_client(Run(task="fail", wait=5)).post("/run/x", json={})
    [run] = run_api.started()
    assert response.status_code == 200
    assert response.json() == {
        "id": run["id"],
        "url": run["url"],
        "status": "failed",
        "error": "boom",
    }


def test_wait_running_out_answers_202(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    response = make_client(Run(task="slow", wait=0.3)).post("/run/x", json={})
    [run] = run_api.started()
    assert response.status_code == 202
    assert response.json() == {"id": run["id"], "url": run["url"], "status": "running"}


def test_dynamic_task_is_limited_by_allow(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    client = make_client(Run(task="${{ path.name }}", allow=("add-one", "nonexistent")))
    assert client.post("/run/add-one", json={"x": 1}).status_code == 202
    response = client.post("/run/fail", json={})
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "task 'fail' is not allowed here; allowed: add-one, nonexistent"},
    )
    response = client.post("/run/nonexistent", json={})
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "unknown task 'nonexistent'"},
    )
    assert [r["task"] for r in run_api.started()] == ["add-one"]


def test_run_api_422_passes_through(make_client: Callable[..., TestClient]) -> None:
    response = make_client(Run(task="add-one")).post("/run/x", json={"x": "one"})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["x"], "msg": "x must be an integer"}]}


def test_dynamic_task_without_allow_is_refused() -> None:
    with pytest.raises(ValueError, match="needs run.allow"):
        app = rt.create_app(project="shop", name="api")
        rt.add_run_route(app, method="POST", path="/r/{n}", run=Run(task="${{ path.n }}"))


def test_run_api_unreachable_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_API_URL", f"http://127.0.0.1:{free_port()}")
    app = rt.create_app(project="shop", name="api")
    rt.add_run_route(app, method="POST", path="/r", run=Run(task="add-one"))
    with TestClient(app) as client:
        response = client.post("/r", json={"x": 1})
    assert (response.status_code, response.json()) == (503, {"detail": "run API unreachable"})


def test_run_route_without_run_api_stops_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_API_URL", raising=False)
    app = rt.create_app(project="shop", name="api")
    with pytest.raises(ConfigError, match="ENGINE_API_URL is not set"):
        rt.add_run_route(app, method="POST", path="/r", run=Run(task="add-one"))


def test_respond_with_expressions_and_headers() -> None:
    app = rt.create_app(project="shop", name="api")
    respond = Respond(
        201, {"hello": "${{ query.who }}", "all": "${{ body }}"}, {"X-Who": "${{ query.who }}"}
    )
    rt.add_respond_route(app, method="POST", path="/hi", respond=respond)
    rt.add_respond_route(
        app, method="GET", path="/escape", respond=Respond(200, {"x": "${{ ''.__class__ }}"})
    )
    rt.add_respond_route(app, method="DELETE", path="/empty", respond=Respond(204))
    with TestClient(app) as client:
        response = client.post("/hi?who=ada", json=[1, 2])
        assert (response.status_code, response.json()) == (201, {"hello": "ada", "all": [1, 2]})
        assert response.headers["x-who"] == "ada"
        response = client.get("/escape")
        assert response.status_code == 500
        assert response.json()["detail"].startswith("Expression failed:")
        response = client.delete("/empty")
        assert (response.status_code, response.content) == (204, b"")
