"""`GET /metrics` of apps and of the control plane, request ids across a proxy, and the app
logs (timestamps, access lines, webhook refusals), all through one applied project."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import EngineProject, ProjectFactory

pytestmark = pytest.mark.e2e

SECRET = "hook-secret-value"

SPEC = """
version: 1
project: observe
secrets:
  hook-secret: {env: HOOK_SECRET}
apps:
  back:
    routes:
      - {method: GET, path: "/items/{item_id}", handler: "handlers:item"}
  front:
    depends_on: [back]
    replicas: 2
    routes:
      - method: GET
        path: "/api/items/{item_id}"
        proxy: {app: back, path: "/items/{item_id}"}
      - method: POST
        path: /add
        run: {task: add-one, inputs: {x: "${{ body.x }}"}, wait: true}
    webhooks:
      - path: /hook
        provider: github
        secret: hook-secret
        events: {push: {run: {task: add-one, inputs: {x: 1}}}}
    websockets:
      - {path: /echo, pattern: echo}
  quiet:
    metrics: false
    routes:
      - {method: GET, path: /, respond: {json: {quiet: true}}}
tasks:
  add-one:
    handler: "handlers:add_one"
    inputs: {x: {type: integer}}
"""

HANDLERS = """
def item(item_id: str) -> dict:
    return {"id": int(item_id)}


def add_one(x: int) -> dict:
    return {"y": x + 1}
"""


@pytest.fixture(scope="module")
def project(shared_engine_project: ProjectFactory) -> Iterator[EngineProject]:
    project = shared_engine_project(
        {"spec.yaml": SPEC, "handlers.py": HANDLERS}, env={"HOOK_SECRET": SECRET}
    )
    project.ok("apply", "spec.yaml", "--timeout", "60")
    yield project


@pytest.fixture(scope="module")
def urls(project: EngineProject) -> dict[str, str]:
    return {a["name"]: a["url"] for a in project.status()["apps"]}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `url`/metrics, parsed by prometheus_client's own parser."""
    response = httpx.get(url + "/metrics", timeout=10, trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def log_of(project: EngineProject, app: str) -> str:
    return (project.engine_dir / "logs" / f"{app}.log").read_text()


def logged(project: EngineProject, app: str, *patterns: str) -> str:
    """`app`'s log once every regex of `patterns` is in it (within 10 s): a worker writes
    its access line after it has answered, so the caller may read before it is there."""
    for _ in range(100):
        log = log_of(project, app)
        if all(re.search(p, log) for p in patterns):
            break
        time.sleep(0.1)
    return log


def test_app_metrics_count_requests_by_route_template(urls: dict[str, str]) -> None:
    for item in (1, 2, 3):
        assert httpx.get(f"{urls['back']}/items/{item}", trust_env=False).json() == {"id": item}
    assert httpx.get(f"{urls['back']}/secret-looking/raw/path", trust_env=False).status_code == 404
    samples = scrape(urls["back"])
    requests = "engine_http_requests_total"
    ok = value(samples, requests, app="back", route="/items/{item_id}", status="200")
    assert ok == 3
    assert value(samples, requests, route="unmatched", status="404") == 1
    routes = {dict(ls)["route"] for (n, ls) in samples if n == requests}
    assert routes <= {"/health", "/items/{item_id}", "unmatched"}, routes
    count = "engine_http_request_duration_seconds_count"
    assert value(samples, count, route="/items/{item_id}") == 3


def test_workers_metrics_add_up_and_request_ids_cross_the_proxy(
    project: EngineProject, urls: dict[str, str]
) -> None:
    with httpx.Client(trust_env=False) as client:  # new connections: both workers answer
        for i in range(6):
            headers = {"X-Request-ID": f"trace-{i}"}
            response = client.get(f"{urls['front']}/api/items/{i}", headers=headers)
            assert response.json() == {"id": i}
            assert response.headers["x-request-id"] == f"trace-{i}"
        made = client.get(f"{urls['front']}/api/items/9").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    samples = scrape(urls["front"])
    proxied = value(samples, "engine_http_requests_total", route="/api/items/{item_id}")
    assert proxied == 7
    lines = [
        rf'"GET /items/\d" 200 [\d.]+ms id={rid}\n'
        for rid in [*(f"trace-{i}" for i in range(6)), made]
    ]
    back = logged(project, "back", *lines)
    for line in lines:
        assert re.search(line, back), line


def test_log_lines_carry_a_timestamp(project: EngineProject, urls: dict[str, str]) -> None:
    httpx.get(f"{urls['back']}/items/5", trust_env=False)
    lines = [line for line in log_of(project, "back").splitlines() if line.strip()]
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
    assert lines and all(stamped.match(line) for line in lines), lines[:5]


def test_health_probes_stay_out_of_every_workers_access_log(
    project: EngineProject, urls: dict[str, str]
) -> None:
    with httpx.Client(trust_env=False) as client:  # new connections: both of front's workers
        for _ in range(6):
            assert client.get(f"{urls['front']}/health", headers={"Connection": "close"}).is_success
        client.get(f"{urls['front']}/api/items/1", headers={"X-Request-ID": "after-probes"})
    line = r'"GET /api/items/1" 200 [\d.]+ms id=after-probes\n'
    log = logged(project, "front", line)
    assert re.search(line, log), log[-2000:]
    assert '"GET /health"' not in log, log[-2000:]


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_deliveries_by_result_and_refusals_logged(
    project: EngineProject, urls: dict[str, str]
) -> None:
    url = urls["front"] + "/hook"
    body = json.dumps({"ref": "main"}).encode()
    bad_signature = "sha256=" + "0" * 64
    sent = [
        ("push", "d1", sign(body)),  # accepted
        ("push", "d1", sign(body)),  # duplicate
        ("issues", "d2", sign(body)),  # ignored
        ("push", "d3", bad_signature),  # rejected
    ]
    with httpx.Client(trust_env=False) as client:
        for event, delivery, signature in sent:
            headers = {
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
            }
            client.post(url, content=body, headers=headers)
    samples = scrape(urls["front"])
    results = {
        r: value(samples, "engine_webhook_deliveries_total", path="/hook", result=r)
        for r in ("accepted", "duplicate", "ignored", "rejected")
    }
    assert results == {"accepted": 1, "duplicate": 1, "ignored": 1, "rejected": 1}
    log = log_of(project, "front")
    assert "webhook /hook refused a delivery with 401: signature does not match" in log
    assert SECRET not in log and bad_signature not in log


def test_open_websockets_are_a_gauge(urls: dict[str, str]) -> None:
    ws_url = urls["front"].replace("http://", "ws://") + "/echo"
    gauge = "engine_websocket_connections"
    with websockets.sync.client.connect(ws_url) as first, websockets.sync.client.connect(ws_url):
        first.send("hi")
        assert first.recv(timeout=10) == "Echo: hi"
        assert value(scrape(urls["front"]), gauge, path="/echo") == 2
    EngineProject.wait_for(lambda: value(scrape(urls["front"]), gauge, path="/echo") == 0)


def test_metrics_false_turns_the_route_off(urls: dict[str, str]) -> None:
    assert httpx.get(urls["quiet"], trust_env=False).json() == {"quiet": True}
    assert httpx.get(urls["quiet"] + "/metrics", trust_env=False).status_code == 404


def test_control_plane_metrics_count_runs_and_requests(
    project: EngineProject, urls: dict[str, str]
) -> None:
    run_ids = []
    for x in (1, 2):
        headers = {"X-Request-ID": f"run-trace-{x}"}
        response = httpx.post(
            f"{urls['front']}/add", json={"x": x}, headers=headers, timeout=30, trust_env=False
        )
        assert response.json()["outputs"] == {"y": x + 1}
        run_ids.append(response.json()["id"])
    # The app's run client passed each request id on to the run API, which logged the run.
    plane_log = (project.engine_dir / "logs" / "control-plane.log").read_text()
    assert '"POST /api/v1/runs" 201' in plane_log
    for x, run_id in zip((1, 2), run_ids, strict=True):
        assert f"run {run_id} of task add-one queued (request id run-trace-{x})" in plane_log
    # ... and kept it in the run's record.
    recorded = {run["id"]: run["request_id"] for run in project.ok("runs", "--json").json()}
    assert [recorded[run_id] for run_id in run_ids] == ["run-trace-1", "run-trace-2"]
    info = project.control_plane()
    assert info is not None
    samples = scrape(info["url"])
    finished = value(samples, "engine_runs_finished_total", task="add-one", status="succeeded")
    assert finished == 3  # the two sent here and the webhook's accepted push
    assert value(samples, "engine_run_duration_seconds_count", task="add-one") == 3
    created = value(
        samples,
        "engine_http_requests_total",
        app="control-plane",
        method="POST",
        route="/api/v1/runs",
    )
    assert created >= 2
    assert value(samples, "engine_app_restarts_total", app="back") == 0
    assert value(samples, "engine_app_up", app="front") == 1
