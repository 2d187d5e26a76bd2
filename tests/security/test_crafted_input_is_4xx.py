"""Item 14: crafted input gets a clear 4xx (or a sanitised header), never a 500: odd
webhook timestamps, JSON nested deep, `NaN`, lone surrogates, CR/LF and non-Latin-1 text
in a header built from an expression, a negative log offset; and a property-based test
over webhook headers and bodies that no answer is a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import EngineProject
from tests.e2e.helpers import RunApi
from tests.security.conftest import GITHUB_SECRET, WHSEC

KEY = base64.b64decode(WHSEC.removeprefix("whsec_"))
DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 2000 + b"1" + b"}" * 2000


@pytest.fixture(scope="module")
def client(web_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_url, timeout=30, trust_env=False) as http:
        yield http


def standard_headers(body: bytes, stamp: str | None = None) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = stamp if stamp is not None else str(int(time.time()))
    mac = hmac.new(KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def latin1(headers: dict[str, str]) -> dict[str, bytes]:
    """Headers as bytes, so that httpx sends non-ASCII text as it is (HTTP allows Latin-1)."""
    return {name: value.encode("latin-1") for name, value in headers.items()}


def github_headers(body: bytes) -> dict[str, str]:
    mac = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={mac}",
    }


@pytest.mark.parametrize(
    "stamp", ["²", "9" * 5000, "-1", "1e9", "+1", "١٢٣".encode().decode("latin-1")]
)
def test_odd_webhook_timestamps_are_401(client: httpx.Client, stamp: str) -> None:
    body = b'{"type": "invoice.paid", "x": 1}'
    response = client.post("/standard", content=body, headers=latin1(standard_headers(body, stamp)))
    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (DEEP, "nested deeper"),
        (DEEP_OBJECT, "nested deeper"),
        (b'{"type": "invoice.paid", "x": NaN}', "NaN"),
        (b'{"type": "invoice.paid", "x": -Infinity}', "Infinity"),
        (b'{"type": "invoice.paid", "x": "\\ud800"}', "surrogate"),
    ],
    ids=["deep-list", "deep-object", "nan", "infinity", "lone-surrogate"],
)
def test_signed_bodies_engine_cannot_carry_are_400(
    client: httpx.Client, project: EngineProject, body: bytes, says: str
) -> None:
    runs = RunApi(project)
    before = runs.ids("echo")
    for path, headers in (("/standard", standard_headers(body)), ("/github", github_headers(body))):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert says in response.json()["detail"]
    route = client.post("/run", content=body, headers={"Content-Type": "application/json"})
    assert route.status_code == 422, route.text
    assert runs.ids("echo") == before


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("a\r\nSet-Cookie: owned=1", "a%0D%0ASet-Cookie: owned=1"),
        ("\u20ac uro", "%E2%82%AC uro"),
        ("caf\u00e9", "caf\u00e9"),
        ("tab\there", "tab\there"),
    ],
)
def test_header_built_from_an_expression_is_sanitised(
    client: httpx.Client, name: str, sent: str
) -> None:
    response = client.get("/hello", params={"name": name})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert response.headers["x-name"].encode("latin-1") == sent.encode("latin-1")


def test_a_negative_log_offset_is_422(project: EngineProject, web_url: str) -> None:
    runs = RunApi(project)
    run = httpx.post(f"{web_url}/run", json={"x": 3}, timeout=30, trust_env=False).json()
    with httpx.Client(base_url=runs.url, headers=runs.headers, trust_env=False) as console:
        response = console.get(f"/runs/{run['id']}.json", params={"log_from": -5})
        assert response.status_code == 422
        assert console.get(f"/runs/{run['id']}.json", params={"log_from": 0}).status_code == 200


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
EVENTS = st.sampled_from(["invoice.paid", "invoice.created", "push", "ping", ""])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "json", "bytes", "crafted"]))
    if kind == "object":
        value = {"type": draw(EVENTS), "x": draw(JSON), "data": draw(JSON)}
        return json.dumps(value).encode()
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    depth = draw(st.integers(1, 3000))
    return draw(
        st.sampled_from(
            [b"[" * depth + b"]" * depth, b'{"type": NaN}', b'{"type": "\\udfff"}', b"\xff\xfe"]
        )
    )


# What a client can send: Latin-1 text without surrounding spaces (h11 refuses those).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40).map(
    str.strip
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies(),
    provider=st.sampled_from(["standard", "github"]),
    sign=st.booleans(),
    mangle=st.dictionaries(
        st.sampled_from(
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "X-GitHub-Event",
                "X-GitHub-Delivery",
                "X-Hub-Signature-256",
                "Content-Type",
            ]
        ),
        HEADER_TEXT,
        max_size=3,
    ),
)
def test_no_webhook_delivery_gets_a_5xx(
    client: httpx.Client, body: bytes, provider: str, sign: bool, mangle: dict[str, str]
) -> None:
    headers = (standard_headers if provider == "standard" else github_headers)(body)
    if not sign:
        headers.update(mangle)
    response = client.post(f"/{provider}", content=body, headers=latin1(headers))
    assert response.status_code < 500, (response.status_code, response.text)
