"""Item 9: a generated app answers only the hosts it serves, refuses requests other sites'
pages send (by `Origin`), and takes bodies only as JSON, so that a web page can neither
read it through DNS rebinding nor start a run with a `text/plain` POST."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import EngineProject
from tests.e2e.helpers import RunApi


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, trust_env=False)


@pytest.mark.parametrize("host", ["evil.example", "rebound.evil.example:80", "127.0.0.2", ""])
def test_a_host_the_app_does_not_serve_answers_400(web_url: str, host: str) -> None:
    with _client(web_url) as client:
        response = client.get("/hello", params={"name": "a"}, headers={"Host": host})
    assert response.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1234", "[::1]:80"])
def test_loopback_hosts_are_served(web_url: str, host: str) -> None:
    with _client(web_url) as client:
        response = client.get("/hello", params={"name": "a"}, headers={"Host": host})
    assert response.status_code == 200


def test_cross_site_requests_start_no_run(project: EngineProject, web_url: str) -> None:
    runs = RunApi(project)
    before = runs.ids("echo")
    with _client(web_url) as client:
        foreign = client.post("/run", json={"x": 1}, headers={"Origin": "http://evil.example"})
        sandboxed = client.post("/run", json={"x": 1}, headers={"Origin": "null"})
        plain = client.post("/run", content=b'{"x": 1}', headers={"Content-Type": "text/plain"})
        form = client.post("/run", data={"x": "1"})
    assert (foreign.status_code, sandboxed.status_code) == (403, 403)
    assert (plain.status_code, form.status_code) == (415, 415)
    assert "application/json" in plain.json()["detail"]
    assert runs.settled("echo") == before
    with _client(web_url) as client:
        same_site = client.post(
            "/run", json={"x": 2}, headers={"Origin": web_url.replace("127.0.0.1", "localhost")}
        )
    assert same_site.status_code < 300, same_site.text
    assert len(runs.ids("echo") - before) == 1


def test_websocket_handshakes_from_other_sites_are_refused(web_url: str) -> None:
    ws_url = web_url.replace("http://", "ws://") + "/echo"

    async def talk() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with websockets.connect(ws_url, origin=web_url) as ws:
            await ws.send("hi")
            assert await ws.recv() == "Echo: hi"

    asyncio.run(talk())


def test_a_cluster_app_allowing_any_host_allows_any_origin() -> None:
    from engine.runtime.hosts import HostGuard

    guard = HostGuard(app=None, hosts=["*"])  # type: ignore[arg-type]
    assert guard.allows_origin("https://shop.example.com")
    assert guard.allows_host("shop.example.com:443")
    loopback = HostGuard(app=None, hosts=["127.0.0.1"])  # type: ignore[arg-type]
    assert not loopback.allows_origin("https://evil.example")
    assert not loopback.allows_host("evil.example")
