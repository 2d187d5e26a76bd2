"""End to end: examples/gateway, applied as a user would. Named endpoints, credentials the
engine mints for a pair of apps, rate limits, a Pydantic body, a run reply and an input
default, through the real engine (control plane, local backend, run API)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from engine.runtime.credentials import mint
from tests.e2e.conftest import EngineProject
from tests.e2e.helpers import app_urls, applied_example, client

pytestmark = pytest.mark.e2e

TOKEN = "operator-token-3f9a"  # the catalog's own token (the secret catalog-token)


@dataclass
class Gateway:
    project: EngineProject
    catalog: str
    storefront: str


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with applied_example(tmp_path_factory, "gateway", {"CATALOG_TOKEN": TOKEN}) as project:
        urls = app_urls(project)
        yield Gateway(project, urls["catalog"], urls["storefront"])


def test_the_catalog_lets_in_its_token_and_the_storefront_only(gateway: Gateway) -> None:
    with client(gateway.catalog) as http:
        assert http.get("/items").status_code == 401
        assert http.get("/items", headers={"Authorization": "Bearer guess"}).status_code == 403
        assert http.get("/items", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with client(gateway.storefront) as http:
        items = http.get("/items")  # a proxy: the storefront's minted credential goes along
        assert items.status_code == 200
        assert [i["name"] for i in items.json()["items"]] == ["kettle", "teapot"]


def test_the_storefront_calls_from_python_under_its_named_variable(gateway: Gateway) -> None:
    with client(gateway.storefront) as http:
        summary = http.get("/summary").json()
    assert summary == {"count": 2, "names": ["kettle", "teapot"], "catalog": gateway.catalog}


def test_orders_are_validated_and_rate_limited_per_customer(gateway: Gateway) -> None:
    order = {"item": "kettle", "quantity": 2}
    with client(gateway.storefront) as http:
        ada = {"X-Customer": "ada"}
        answers = [http.post("/orders", json=order, headers=ada) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].json() == {"accepted": True, "item": "kettle", "total": 50}
        assert int(answers[3].headers["Retry-After"]) >= 1
        bad = http.post("/orders", json={"quantity": 0}, headers={"X-Customer": "bob"})
        assert bad.status_code == 422  # the catalog's Pydantic model, passed back
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
            ("body", "item"),
            ("body", "quantity"),
        }


def test_restock_answers_flytes_run_id_and_url_and_fills_the_default(gateway: Gateway) -> None:
    with client(gateway.storefront) as http:
        answer = http.post("/restock", json={"item": "tea"})
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["ordered"] == {"item": "tea", "quantity": 10}  # quantity's default
    assert reply["url"].endswith(f"/runs/{reply['run_id']}")


def test_the_minted_credential_is_in_no_file_output_or_page(gateway: Gateway) -> None:
    minted = mint(TOKEN, "gateway", "catalog", "storefront").encode()
    engine_dir = gateway.project.engine_dir
    for path in engine_dir.rglob("*"):
        if path.is_file():
            assert minted not in path.read_bytes(), path
            assert TOKEN.encode() not in path.read_bytes(), path
    outputs = [gateway.project.ok(*args).output for args in (["status"], ["plan", "spec.yaml"])]
    console = gateway.project.control_plane()
    assert console is not None
    page = httpx.get(console["url"] + "/", trust_env=False).text
    for text in [*outputs, page]:
        assert minted.decode() not in text
