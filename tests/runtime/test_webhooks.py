import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.runtime.app import Respond, Run
from tests.runtime import declare as rt
from tests.runtime.conftest import REPO, RunAPI, TestClient

FIXTURES = sorted((REPO / "tests/fixtures/github").glob("*.json"))
SECRET = "gh-s3cret"
OLD_SECRET = "gh-old"
STANDARD_KEY = base64.b64encode(b"standard-key-bytes").decode()


def github_headers(
    body: bytes, event: str, delivery: str = "d-1", secret: str = SECRET
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


def standard_headers(
    body: bytes, msg_id: str = "msg_1", stamp: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    signed = f"{msg_id}.{stamp}.".encode() + body
    sig = base64.b64encode(
        hmac.new(base64.b64decode(STANDARD_KEY), signed, hashlib.sha256).digest()
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{sig.decode()}",
    }


EVENTS = {
    "push": Run(
        task="add-one",
        inputs={
            "x": 1,
            "after": "${{ body.after }}",
            "event": "${{ event }}",
            "delivery": "${{ delivery }}",
        },
    ),
    "issues": Respond(200, {"action": "${{ body.action }}", "title": "${{ body.issue.title }}"}),
    "pull_request": Run(task="add-one", inputs={"x": "${{ body.number }}"}),
    "release": Run(task="add-one", inputs={"x": 1}),
    "workflow_run": Run(task="add-one", inputs={"x": 1}),
    "star": Run(task="add-one", inputs={"x": 1}),
    "issue_comment": Run(task="add-one", inputs={"x": 1}),
    "dependabot_alert": Respond(200, {"description": "${{ body.repository.description }}"}),
}


@pytest.fixture
def make_client(
    run_api: RunAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """Factory: an app with a github (/gh) and a standard (/std) webhook, data in tmp_path."""
    monkeypatch.setenv("GH_SECRET", SECRET)
    monkeypatch.setenv("GH_OLD", OLD_SECRET)
    monkeypatch.setenv("STD_SECRET", f"whsec_{STANDARD_KEY}")
    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path / "data"))
    clients: list[TestClient] = []

    def make(**options: Any) -> TestClient:
        app = rt.create_app(project="shop", name="hooks")
        rt.add_webhook(
            app,
            path="/gh",
            provider="github",
            secret_envs=("GH_SECRET", "GH_OLD"),
            events=EVENTS,
            **options,
        )
        rt.add_webhook(
            app,
            path="/std",
            provider="standard",
            secret_envs=("STD_SECRET",),
            events={"invoice.paid": Run(task="add-one", inputs={"x": "${{ body.data.n }}"})},
            **options,
        )
        clients.append(TestClient(app).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_every_real_github_payload(
    make_client: Callable[..., TestClient], run_api: RunAPI, fixture: Path
) -> None:
    body = fixture.read_bytes()
    event = fixture.name.split(".")[0]
    response = make_client().post(
        "/gh", content=body, headers=github_headers(body, event, fixture.name)
    )
    payload = json.loads(body)
    if event == "ping":
        assert (response.status_code, response.json()) == (200, {"status": "pong"})
    elif event == "issues":
        assert response.json() == {"action": "opened", "title": payload["issue"]["title"]}
    elif event == "dependabot_alert":
        assert response.json() == {"description": payload["repository"]["description"]}
        assert "\U0001f4e6" in response.json()["description"]
    else:
        [run] = run_api.started()
        assert (response.status_code, response.json()) == (
            202,
            {"id": run["id"], "url": run["url"], "status": "started"},
        )
    if event == "push":
        assert run_api.started()[0]["inputs"] == {
            "x": 1,
            "after": payload["after"],
            "event": "push",
            "delivery": fixture.name,
        }
    if event == "pull_request":
        assert run_api.started()[0]["inputs"] == {"x": payload["number"]}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_tampered_real_payload_is_401(
    make_client: Callable[..., TestClient], run_api: RunAPI, fixture: Path
) -> None:
    body = fixture.read_bytes()
    headers = github_headers(body, fixture.name.split(".")[0])
    response = make_client().post("/gh", content=body.replace(b"}", b" }", 1), headers=headers)
    assert (response.status_code, response.json()) == (401, {"detail": "signature does not match"})
    assert run_api.started() == []


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"X-Hub-Signature-256": None}, "missing X-Hub-Signature-256 header"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "malformed X-Hub-Signature-256 header"),
        (
            {"X-Hub-Signature-256": None, "X-Hub-Signature": "sha1=" + "a" * 40},
            "missing X-Hub-Signature-256 header",
        ),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "signature does not match"),
    ],
    ids=["missing", "malformed", "sha1-only", "wrong"],
)
def test_bad_github_signatures_are_401(
    make_client: Callable[..., TestClient], run_api: RunAPI, change: dict, detail: str
) -> None:
    body = b'{"after": "abc"}'
    headers = {k: v for k, v in (github_headers(body, "push") | change).items() if v is not None}
    response = make_client().post("/gh", content=body, headers=headers)
    assert (response.status_code, response.json()) == (401, {"detail": detail})
    assert run_api.started() == []


def test_rotation_accepts_either_secret(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    client = make_client()
    body = b'{"after": "abc"}'
    assert (
        client.post(
            "/gh", content=body, headers=github_headers(body, "push", "a", SECRET)
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/gh", content=body, headers=github_headers(body, "push", "b", OLD_SECRET)
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/gh", content=body, headers=github_headers(body, "push", "c", "other")
        ).status_code
        == 401
    )
    assert len(run_api.started()) == 2


def test_unlisted_event_is_ignored(make_client: Callable[..., TestClient], run_api: RunAPI) -> None:
    body = b"{}"
    response = make_client().post("/gh", content=body, headers=github_headers(body, "fork"))
    assert (response.status_code, response.json()) == (202, {"status": "ignored"})
    assert run_api.started() == []


def test_github_non_json_is_415_after_signature(make_client: Callable[..., TestClient]) -> None:
    body = b"payload=%7B%7D"
    response = make_client().post("/gh", content=body, headers=github_headers(body, "push"))
    assert response.status_code == 415
    unsigned = {k: v for k, v in github_headers(body, "push").items() if k != "X-Hub-Signature-256"}
    assert make_client().post("/gh", content=body, headers=unsigned).status_code == 401


def test_declared_content_length_over_max_is_413(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    body = b'{"after": "' + b"a" * 200 + b'"}'
    response = make_client(max_body=100).post(
        "/gh", content=body, headers=github_headers(body, "push")
    )
    assert (response.status_code, response.json()) == (413, {"detail": "body over 100 bytes"})
    assert run_api.started() == []


def test_streamed_body_over_max_is_413(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    body = b'{"after": "' + b"a" * 200 + b'"}'
    headers = github_headers(body, "push")

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 50):
            yield body[i : i + 50]

    response = make_client(max_body=100).post("/gh", content=chunks(), headers=headers)
    assert (response.status_code, response.json()) == (413, {"detail": "body over 100 bytes"})
    assert run_api.started() == []


def test_redelivery_is_deduplicated_across_restarts(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    body = b'{"after": "abc"}'
    headers = github_headers(body, "push", "same-id")
    assert make_client().post("/gh", content=body, headers=headers).status_code == 202
    response = make_client().post("/gh", content=body, headers=headers)
    assert (response.status_code, response.json()) == (
        200,
        {"status": "duplicate", "delivery": "same-id"},
    )
    assert len(run_api.started()) == 1


def test_dedupe_window_expires(make_client: Callable[..., TestClient], run_api: RunAPI) -> None:
    body = b'{"after": "abc"}'
    client = make_client(dedupe=0.2)
    assert (
        client.post("/gh", content=body, headers=github_headers(body, "push", "x")).status_code
        == 202
    )
    time.sleep(0.3)
    assert (
        client.post("/gh", content=body, headers=github_headers(body, "push", "x")).status_code
        == 202
    )
    assert len(run_api.started()) == 2


def test_failed_delivery_is_not_remembered(
    make_client: Callable[..., TestClient], run_api: RunAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_API_URL", "http://127.0.0.1:9")
    body = b'{"after": "abc"}'
    assert (
        make_client()
        .post("/gh", content=body, headers=github_headers(body, "push", "r"))
        .status_code
        == 503
    )
    monkeypatch.setenv("ENGINE_API_URL", run_api.url)  # type: ignore[attr-defined]
    assert (
        make_client()
        .post("/gh", content=body, headers=github_headers(body, "push", "r"))
        .status_code
        == 202
    )


def test_a_refused_delivery_uses_up_no_key(
    make_client: Callable[..., TestClient], run_api: RunAPI
) -> None:
    """Issue 12 item 3: a 4xx creates no run, so the corrected redelivery is handled."""
    client = make_client()
    bad = b'{"number": "not a number"}'
    response = client.post("/gh", content=bad, headers=github_headers(bad, "pull_request", "p"))
    assert response.status_code == 422
    good = b'{"number": 5}'
    response = client.post("/gh", content=good, headers=github_headers(good, "pull_request", "p"))
    assert response.status_code == 202
    again = client.post("/gh", content=good, headers=github_headers(good, "pull_request", "p"))
    assert again.json() == {"status": "duplicate", "delivery": "p"}
    assert [r["inputs"] for r in run_api.started()] == [{"x": 5}]


def test_standard_webhook(make_client: Callable[..., TestClient], run_api: RunAPI) -> None:
    client = make_client()
    body = b'{"type": "invoice.paid", "data": {"n": 5}}'
    response = client.post("/std", content=body, headers=standard_headers(body))
    assert response.status_code == 202
    assert run_api.started()[0]["inputs"] == {"x": 5}
    response = client.post("/std", content=body, headers=standard_headers(body))
    assert (response.status_code, response.json()) == (
        200,
        {"status": "duplicate", "delivery": "msg_1"},
    )
    other = b'{"type": "invoice.created"}'
    response = client.post("/std", content=other, headers=standard_headers(other, "msg_2"))
    assert (response.status_code, response.json()) == (202, {"status": "ignored"})


def test_standard_official_vector(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's vector, whose timestamp is long past: a correct signature, refused as stale."""
    monkeypatch.setenv("STD_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    response = make_client().post("/std", content=b'{"test": 2432232314}', headers=headers)
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "webhook-timestamp is outside the allowed window"},
    )


@pytest.mark.parametrize("offset", [-305, 305], ids=["too-old", "too-new"])
def test_standard_timestamp_window(
    make_client: Callable[..., TestClient], run_api: RunAPI, offset: int
) -> None:
    body = b'{"type": "invoice.paid", "data": {"n": 5}}'
    headers = standard_headers(body, stamp=int(time.time()) + offset)
    assert make_client().post("/std", content=body, headers=headers).status_code == 401
    assert run_api.started() == []


def test_standard_non_json_is_400(make_client: Callable[..., TestClient]) -> None:
    response = make_client().post("/std", content=b"nope", headers=standard_headers(b"nope"))
    assert (response.status_code, response.json()) == (400, {"detail": "body is not JSON"})


def test_plain_webhook_runs_its_action(run_api: RunAPI, tmp_path: Path) -> None:
    app = rt.create_app(project="shop", name="hooks")
    rt.add_webhook(
        app, path="/p", provider="plain", action=Run(task="add-one", inputs={"x": "${{ body.n }}"})
    )
    with TestClient(app) as client:
        assert client.post("/p", json={"n": 2}).status_code == 202
        response = client.post("/p", content=b"not json")
    assert (response.status_code, response.json()) == (400, {"detail": "body is not JSON"})
    assert [r["inputs"] for r in run_api.started()] == [{"x": 2}]
