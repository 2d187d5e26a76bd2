"""End to end: every example, copied out of the repository and applied as a user would.

Each class applies one example once (a class-scoped project, destroyed after its last
test, with every known pid checked) and drives it with real clients over 127.0.0.1: httpx
for HTTP, `websockets` for WebSockets, the CLI for runs.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import EngineProject
from tests.e2e.helpers import (
    RunApi,
    app_urls,
    applied_example,
    client,
    github_headers,
    github_payload,
    new_whsec,
    standard_headers,
)

pytestmark = pytest.mark.e2e


def fastapi_422(response: Any, field: str) -> list[dict[str, Any]]:
    """Assert FastAPI's validation error shape, with one error naming `field`."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for error in detail:
        assert {"type", "loc", "msg"} <= error.keys(), error
    assert any(error["loc"][-1] == field for error in detail), detail
    return detail


# quickstart


class TestQuickstart:
    @pytest.fixture(scope="class")
    @classmethod
    def url(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        with applied_example(tmp_path_factory, "quickstart") as project:
            yield app_urls(project)["hello"]

    def test_routes_answer_as_the_readme_says(self, url: str) -> None:
        with client(url) as http:
            assert http.get("/").json() == {"message": "Hello, world!"}
            assert http.get("/", params={"name": "Ada"}).json() == {"message": "Hello, Ada!"}
            assert http.get("/add", params={"x": 41}).json() == {"result": 42}
            assert http.get("/add", params={"x": 1, "y": 2}).json() == {"result": 3}
            assert http.get("/health").json() == {"status": "healthy"}

    def test_a_query_value_of_the_wrong_type_gets_fastapis_422(self, url: str) -> None:
        with client(url) as http:
            detail = fastapi_422(http.get("/add", params={"x": "abc"}), "x")
            assert detail[0]["loc"] == ["query", "x"]
            assert detail[0]["input"] == "abc"
            fastapi_422(http.get("/add"), "x")  # x is required

    def test_openapi_docs_are_served(self, url: str) -> None:
        with client(url) as http:
            docs = http.get("/docs")
            assert docs.status_code == 200
            assert docs.headers["content-type"].startswith("text/html")
            schema = http.get("/openapi.json").json()
            assert {"/", "/add"} <= schema["paths"].keys()


# task-calls-app


class TestTaskCallsApp:
    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
        with applied_example(tmp_path_factory, "task-calls-app") as project:
            yield project

    def test_run_wait_prints_the_outputs_and_runs_lists_it(self, project: EngineProject) -> None:
        result = project.run("run", "add-one", "-i", "x=41", "--wait")

        assert result.returncode == 0, str(result)
        assert json.loads(result.stdout) == {"result": 42}
        runs = project.ok("runs", "--json").json()
        mine = [r for r in runs if r["task"] == "add-one" and r["inputs"] == {"x": 41}]
        assert len(mine) == 1, runs
        assert mine[0]["status"] == "succeeded"
        assert mine[0]["outputs"] == {"result": 42}
        assert mine[0]["error"] is None

    def test_an_input_of_the_wrong_type_is_refused_before_a_run(
        self, project: EngineProject
    ) -> None:
        before = RunApi(project).ids()

        result = project.run("run", "add-one", "-i", "x=abc", "--wait")

        assert result.returncode != 0, str(result)
        assert "x" in result.output
        assert RunApi(project).settled() == before

    def test_the_app_answers_directly(self, project: EngineProject) -> None:
        with client(app_urls(project)["add-one-app"]) as http:
            assert http.get("/", params={"x": 1}).json() == {"result": 2}


# webhook-runner

API_KEY = secrets.token_urlsafe(24)


class TestWebhookRunner:
    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
        env = {"WEBHOOK_API_KEY": API_KEY}
        with applied_example(tmp_path_factory, "webhook-runner", env) as project:
            yield project

    @pytest.fixture(scope="class")
    @classmethod
    def http(cls, project: EngineProject) -> Iterator[Any]:
        with client(app_urls(project)["runner"]) as http:
            yield http

    @pytest.fixture(scope="class")
    @classmethod
    def auth(cls) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def test_a_client_generated_from_its_openapi_starts_a_run(
        self, project: EngineProject, http: Any, tmp_path: Path
    ) -> None:
        """openapi-python-client, given the app's own /openapi.json, makes a client that
        sends the bearer token and reads the 202 answer and its id, without hand edits."""
        (tmp_path / "openapi.json").write_text(http.get("/openapi.json").text)
        tools = Path(sys.executable).parent
        generate = [str(tools / "openapi-python-client"), "generate", "--path", "openapi.json"]
        done = subprocess.run(
            [*generate, "--output-path", "runner_client", "--meta", "none"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        sys.path.insert(0, str(tmp_path))
        try:
            generated = importlib.import_module("runner_client")
            start = importlib.import_module("runner_client.api.default.post_run_task_name")
            models = importlib.import_module("runner_client.models")
            base_url = str(http.base_url).rstrip("/")
            with generated.AuthenticatedClient(base_url=base_url, token=API_KEY) as api:
                answer = start.sync_detailed("greet", client=api, body={"name": "Ada"})
                refused = start.sync_detailed("nope", client=api, body={})
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m.split(".")[0] == "runner_client"]:
                del sys.modules[name]
        assert answer.status_code == 202, answer.content
        assert isinstance(answer.parsed, models.RunStarted)
        assert answer.parsed.status == "started"
        assert RunApi(project).finished(answer.parsed.id)["outputs"] == {"greeting": "Hello, Ada!"}
        assert refused.status_code == 403
        assert isinstance(refused.parsed, models.Detail)

    def test_the_open_route_and_the_bearer_checks(self, http: Any) -> None:
        assert http.get("/").json()["service"] == "runner"
        assert http.post("/run-task/greet", json={}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert http.post("/run-task/greet", json={}, headers=wrong).status_code == 403
        assert http.post("/orders", json={}, headers=wrong).status_code == 403

    def test_run_task_starts_a_run_that_succeeds(
        self, project: EngineProject, http: Any, auth: dict[str, str]
    ) -> None:
        response = http.post("/run-task/greet", json={"name": "Ada"}, headers=auth)

        assert response.status_code == 202, response.text
        started = response.json()
        assert started.keys() == {"id", "url", "status"}
        assert started["status"] == "started"
        console = project.control_plane()["url"]  # type: ignore[index]
        assert started["url"] == f"{console}/runs/{started['id']}"
        run = RunApi(project).finished(started["id"])
        assert run["status"] == "succeeded", run
        assert run["task"] == "greet"
        assert run["outputs"] == {"greeting": "Hello, Ada!"}
        listed = {r["id"]: r for r in project.ok("runs", "--json").json()}
        assert listed[started["id"]]["status"] == "succeeded"

    def test_names_outside_allow_are_refused_and_bad_inputs_get_422(
        self, project: EngineProject, http: Any, auth: dict[str, str]
    ) -> None:
        api = RunApi(project)
        before = api.ids()

        assert http.post("/run-task/process-order", json={}, headers=auth).status_code == 403
        assert http.post("/run-task/no-such-task", json={}, headers=auth).status_code == 403
        fastapi_422(http.post("/run-task/greet", json={"name": 5}, headers=auth), "name")

        assert api.settled() == before

    def test_waiting_routes_answer_outputs_or_the_error(
        self, http: Any, auth: dict[str, str]
    ) -> None:
        body = {"numbers": [1, 2, 3.5], "delay": 0.2}
        done = http.post("/run-task-and-wait/slow-sum", json=body, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json().keys() == {"id", "url", "status", "outputs"}
        assert done.json()["status"] == "succeeded"
        assert done.json()["outputs"] == {"sum": 6.5}

        failed = http.post("/run-task-and-wait/fail", json={}, headers=auth)
        assert failed.status_code == 200, failed.text
        assert failed.json().keys() == {"id", "url", "status", "error"}
        assert failed.json()["status"] == "failed"
        assert "this task always fails" in failed.json()["error"]

    def test_a_body_missing_a_required_field_names_it_in_loc(
        self, http: Any, auth: dict[str, str]
    ) -> None:
        response = http.post("/orders", json={"quantity": 2}, headers=auth)
        assert response.status_code == 422
        missing = {"type": "missing", "loc": ["body", "item"], "msg": "Field required"}
        assert response.json()["detail"] == [{**missing, "input": {"quantity": 2}}]  # FastAPI's
        fastapi_422(response, "item")

    def test_the_typed_orders_route(
        self, project: EngineProject, http: Any, auth: dict[str, str]
    ) -> None:
        api = RunApi(project)
        before = api.ids("process-order")
        fastapi_422(
            http.post("/orders", json={"item": "book", "quantity": 0}, headers=auth), "quantity"
        )
        fastapi_422(http.post("/orders", json={"item": "", "quantity": 1}, headers=auth), "item")
        assert api.settled("process-order") == before

        response = http.post("/orders", json={"item": "book", "quantity": 2}, headers=auth)

        assert response.status_code == 202, response.text
        assert response.json().keys() == {"id", "url", "status"}
        run = api.finished(response.json()["id"])
        assert run["task"] == "process-order"
        assert run["status"] == "succeeded", run
        assert run["outputs"] == {"item": "book", "quantity": 2, "status": "accepted"}
        assert api.ids("process-order") == before | {run["id"]}


# github-webhook

GITHUB_SECRET = secrets.token_hex(20)
IGNORED = {
    "star": "star.created.json",
    "issues": "issues.opened.json",
    "pull_request": "pull_request.opened.json",
    "issue_comment": "issue_comment.created.json",
    "release": "release.published.json",
    "workflow_run": "workflow_run.completed.json",
    "dependabot_alert": "dependabot_alert.created.json",  # raw UTF-8 emoji in the body
}


def raw_post(url: str, head: str) -> int:
    """Send only a request head (no body) over a socket; return the answer's status code."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


class TestGithubWebhook:
    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
        env = {"GITHUB_WEBHOOK_SECRET": GITHUB_SECRET}
        with applied_example(tmp_path_factory, "github-webhook", env) as project:
            yield project

    @pytest.fixture(scope="class")
    @classmethod
    def hook(cls, project: EngineProject) -> str:
        return app_urls(project)["receiver"] + "/github-webhook"

    def post(self, hook: str, event: str, body: bytes, **headers: str) -> Any:
        sent = {**github_headers(GITHUB_SECRET, event, body), **headers}
        with client() as http:
            return http.post(hook, content=body, headers=sent)

    @pytest.mark.parametrize("fixture", ["push.default.json", "push.new-branch.json"])
    def test_a_push_starts_exactly_one_deploy_naming_the_commit(
        self, project: EngineProject, hook: str, fixture: str
    ) -> None:
        api = RunApi(project)
        before = api.ids("deploy")
        body = github_payload(fixture)
        payload = json.loads(body)
        delivery = str(uuid.uuid4())

        response = self.post(hook, "push", body, **{"X-GitHub-Delivery": delivery})

        assert response.status_code == 202, response.text
        assert response.json().keys() == {"id", "url", "status"}
        assert response.json()["status"] == "started"
        run = api.finished(response.json()["id"])
        assert run["status"] == "succeeded", run
        assert run["inputs"] == {
            "commit": payload["after"],
            "ref": payload["ref"],
            "deleted": payload["deleted"],
            "delivery": delivery,
        }
        if payload["deleted"]:  # push.default.json deletes a tag: nothing to roll out
            assert run["outputs"]["deployed"] is None
            assert run["outputs"]["skipped"] == "ref deleted"
        else:
            assert run["outputs"]["deployed"] == payload["after"]
            assert run["outputs"]["branch"] == payload["ref"].removeprefix("refs/heads/")
        assert api.settled("deploy") == before | {run["id"]}

    def test_the_readmes_send_event_push_starts_a_deploy_that_succeeds(
        self, project: EngineProject, hook: str
    ) -> None:
        """`python send_event.py "$URL" push`, as the README says (issue 12, item 4)."""
        env = {**project.env, "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET}
        done = subprocess.run(
            [sys.executable, "send_event.py", hook, "push"],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        status, _, answer = done.stdout.partition(" ")
        assert status == "202", done.stdout + done.stderr
        run = RunApi(project).finished(json.loads(answer)["id"])
        assert run["status"] == "succeeded", run
        assert run["outputs"]["branch"] == "main"

    def test_a_push_without_deleted_still_deploys(self, project: EngineProject, hook: str) -> None:
        """A sender that omits `deleted` (null in the expression) gets the task's default."""
        body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
        response = self.post(hook, "push", body)
        assert response.status_code == 202, response.text
        run = RunApi(project).finished(response.json()["id"])
        assert (run["status"], run["outputs"]["deployed"]) == ("succeeded", "a" * 40), run

    def test_ping_answers_200_and_starts_nothing(self, project: EngineProject, hook: str) -> None:
        api = RunApi(project)
        before = api.ids()

        response = self.post(hook, "ping", github_payload("ping.default.json"))

        assert response.status_code == 200, response.text
        assert api.settled() == before

    def test_unlisted_events_are_ignored(self, project: EngineProject, hook: str) -> None:
        api = RunApi(project)
        before = api.ids()

        for event, fixture in IGNORED.items():
            response = self.post(hook, event, github_payload(fixture))
            assert response.status_code == 202, (event, response.text)
            assert response.json() == {"status": "ignored"}, event

        assert api.settled() == before

    def test_bad_signatures_get_401_and_start_nothing(
        self, project: EngineProject, hook: str
    ) -> None:
        api = RunApi(project)
        before = api.ids()
        body = github_payload("push.default.json")
        good = github_headers(GITHUB_SECRET, "push", body)
        tampered = body.replace(b"Codertocat", b"Codertocas", 1)  # still valid JSON
        assert tampered != body
        missing = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
        sha1_only = {**missing, "X-Hub-Signature": "sha1=" + "0" * 40}
        wrong_secret = github_headers("not-the-secret", "push", body)

        with client() as http:
            answers = {
                "tampered": http.post(hook, content=tampered, headers=good),
                "missing": http.post(hook, content=body, headers=missing),
                "zz": http.post(
                    hook, content=body, headers={**good, "X-Hub-Signature-256": "sha256=zz"}
                ),
                "sha1-only": http.post(hook, content=body, headers=sha1_only),
                "wrong-secret": http.post(hook, content=body, headers=wrong_secret),
                "no-prefix": http.post(
                    hook,
                    content=body,
                    headers={**good, "X-Hub-Signature-256": good["X-Hub-Signature-256"][7:]},
                ),
            }

        assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 401)
        assert api.settled() == before

    def test_a_redelivery_starts_nothing_new(self, project: EngineProject, hook: str) -> None:
        api = RunApi(project)
        body = github_payload("push.default.json")
        delivery = str(uuid.uuid4())
        first = self.post(hook, "push", body, **{"X-GitHub-Delivery": delivery})
        assert first.status_code == 202, first.text
        api.finished(first.json()["id"])
        before = api.ids("deploy")

        again = self.post(hook, "push", body, **{"X-GitHub-Delivery": delivery})

        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate"
        assert api.settled("deploy") == before
        runs = [r for r in api.runs("deploy") if r["inputs"].get("delivery") == delivery]
        assert len(runs) == 1, runs

    def test_a_signed_body_that_is_not_json_gets_415(
        self, project: EngineProject, hook: str
    ) -> None:
        api = RunApi(project)
        before = api.ids()
        body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}

        response = self.post(hook, "push", body, **headers)

        assert response.status_code == 415, response.text
        assert api.settled() == before

    def test_a_declared_length_over_max_body_gets_413_before_anything_else(self, hook: str) -> None:
        parts = urlsplit(hook)
        over = 25 * 1024 * 1024 + 1  # the default max_body is 25MB; nothing is sent
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
            f"X-GitHub-Delivery: {uuid.uuid4()}\r\nContent-Length: {over}\r\n\r\n"
        )

        assert raw_post(hook, head) == 413


# standard-webhooks

BILLING_SECRET = new_whsec()


def invoice(kind: str, invoice_id: str = "in_123", amount: int = 4200) -> bytes:
    return json.dumps({"type": kind, "data": {"id": invoice_id, "amount": amount}}).encode()


class TestStandardWebhooks:
    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
        env = {"BILLING_WEBHOOK_SECRET": BILLING_SECRET}
        with applied_example(tmp_path_factory, "standard-webhooks", env) as project:
            yield project

    @pytest.fixture(scope="class")
    @classmethod
    def hook(cls, project: EngineProject) -> str:
        return app_urls(project)["billing"] + "/webhooks/billing"

    def test_invoice_paid_starts_a_run_once_per_webhook_id(
        self, project: EngineProject, hook: str
    ) -> None:
        api = RunApi(project)
        before = api.ids("record-payment")
        body = invoice("invoice.paid", "in_e2e", 4200)
        headers = standard_headers(BILLING_SECRET, body)

        with client() as http:
            response = http.post(hook, content=body, headers=headers)
            assert response.status_code == 202, response.text
            assert response.json().keys() == {"id", "url", "status"}
            run = api.finished(response.json()["id"])
            again = http.post(
                hook,
                content=body,
                headers=standard_headers(BILLING_SECRET, body, msg_id=headers["webhook-id"]),
            )

        assert run["status"] == "succeeded", run
        assert run["outputs"] == {
            "invoice": "in_e2e",
            "amount": 4200,
            "event_id": headers["webhook-id"],
            "recorded": True,
        }
        assert again.status_code in (200, 202), again.text
        assert "id" not in again.json() or again.json()["id"] == run["id"]
        assert api.settled("record-payment") == before | {run["id"]}

    def test_respond_and_ignored_types(self, project: EngineProject, hook: str) -> None:
        api = RunApi(project)
        before = api.ids()
        created = invoice("invoice.created", "in_7")
        other = invoice("customer.created")

        with client() as http:
            noted = http.post(
                hook, content=created, headers=standard_headers(BILLING_SECRET, created)
            )
            ignored = http.post(
                hook, content=other, headers=standard_headers(BILLING_SECRET, other)
            )

        assert noted.status_code == 200, noted.text
        assert noted.json() == {"status": "noted", "invoice": "in_7"}
        assert ignored.status_code == 202, ignored.text
        assert ignored.json() == {"status": "ignored"}
        assert api.settled() == before

    def test_stale_future_or_wrong_signatures_get_401(
        self, project: EngineProject, hook: str
    ) -> None:
        import time

        api = RunApi(project)
        before = api.ids()
        body = invoice("invoice.paid")
        now = int(time.time())
        good = standard_headers(BILLING_SECRET, body)
        cases = {
            "10 min old": standard_headers(BILLING_SECRET, body, timestamp=now - 600),
            "10 min ahead": standard_headers(BILLING_SECRET, body, timestamp=now + 600),
            "other key": standard_headers(new_whsec(), body),
            "no signature": {k: v for k, v in good.items() if k != "webhook-signature"},
            "v2 scheme": {
                **good,
                "webhook-signature": good["webhook-signature"].replace("v1,", "v2,"),
            },
        }

        with client() as http:
            codes = {
                name: http.post(hook, content=body, headers=h).status_code
                for name, h in cases.items()
            }
            tampered = http.post(hook, content=body.replace(b"4200", b"9999"), headers=good)

        assert codes == dict.fromkeys(cases, 401)
        assert tampered.status_code == 401
        assert api.settled() == before

    def test_a_body_over_the_examples_1mb_max_body_gets_413(self, hook: str) -> None:
        body = b'{"type": "invoice.paid", "pad": "' + b"x" * (1024 * 1024) + b'"}'

        with client() as http:
            response = http.post(hook, content=body, headers=standard_headers(BILLING_SECRET, body))

        assert response.status_code == 413


# app-calls-app


class TestAppCallsApp:
    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
        with applied_example(tmp_path_factory, "app-calls-app") as project:
            yield project

    def test_the_frontend_proxies_and_calls_the_backend(self, project: EngineProject) -> None:
        urls = app_urls(project)

        with client(urls["frontend"]) as http:
            assert http.get("/api/items/2").json() == {"id": "2", "name": "teapot", "price": 18}
            missing = http.get("/api/items/9")
            assert missing.status_code == 404
            assert missing.json() == {"detail": "no item 9"}
            assert [i["id"] for i in http.get("/items").json()["items"]] == ["1", "2"]
            assert http.get("/summary").json() == {
                "count": 2,
                "total_price": 43,
                "names": ["kettle", "teapot"],
            }
            whoami = http.get("/whoami").json()

        assert whoami == {"app": "frontend", "backend": urls["backend"]}
        with client(urls["backend"]) as http:
            assert http.get("/items/9").json() == {"detail": "no item 9"}


# websockets

QUIET = 1.0  # seconds a client waits to be sure that nothing arrives


def nothing_arrives(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        got = ws.recv(timeout=QUIET)
        pytest.fail(f"unexpected message: {got!r}")


class TestWebsockets:
    @pytest.fixture(scope="class")
    @classmethod
    def ws_url(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        with applied_example(tmp_path_factory, "websockets") as project:
            yield "ws" + app_urls(project)["sockets"].removeprefix("http")

    def test_echo(self, ws_url: str) -> None:
        with connect(f"{ws_url}/echo", open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "Echo: hi"
            ws.send("again")
            assert ws.recv(timeout=10) == "Echo: again"

    def test_echo_closes_on_a_frame_over_max_message(self, ws_url: str) -> None:
        with connect(f"{ws_url}/echo", open_timeout=10, max_size=None) as ws:
            ws.send("x" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    def test_broadcast_reaches_every_client_sender_too(self, ws_url: str) -> None:
        with (
            connect(f"{ws_url}/broadcast", open_timeout=10) as a,
            connect(f"{ws_url}/broadcast", open_timeout=10) as b,
        ):
            a.send("hello all")
            assert b.recv(timeout=10) == "hello all"
            assert a.recv(timeout=10) == "hello all"

    def test_chat_reaches_the_others_in_the_room_only(self, ws_url: str) -> None:
        with (
            connect(f"{ws_url}/chat/lobby", open_timeout=10) as a,
            connect(f"{ws_url}/chat/lobby", open_timeout=10) as b,
            connect(f"{ws_url}/chat/kitchen", open_timeout=10) as c,
        ):
            a.send("hi lobby")
            assert b.recv(timeout=10) == "hi lobby"
            nothing_arrives(a)
            nothing_arrives(c)
            c.send("hi kitchen")
            nothing_arrives(a)
            nothing_arrives(b)

    def test_the_stream_pushes_json_ticks(self, ws_url: str) -> None:
        with connect(f"{ws_url}/ticks", open_timeout=10) as ws:
            first = json.loads(ws.recv(timeout=10))
            second = json.loads(ws.recv(timeout=10))
        assert first.keys() == second.keys() == {"tick", "time"}
        assert second["tick"] > first["tick"]

    def test_the_task_runner_reports_a_run_to_its_end(self, ws_url: str) -> None:
        with connect(f"{ws_url}/tasks", open_timeout=10) as ws:
            ws.send(json.dumps({"task": "countdown", "inputs": {"start": 1}}))
            started = json.loads(ws.recv(timeout=10))
            assert started.keys() == {"id", "url", "status"}, started
            assert started["status"] == "started"
            updates = [json.loads(ws.recv(timeout=30))]
            while updates[-1].get("status") not in {
                "succeeded",
                "failed",
                "cancelled",
                "timed_out",
            }:
                updates.append(json.loads(ws.recv(timeout=30)))

        assert all(u["id"] == started["id"] for u in updates), updates
        assert updates[-1]["status"] == "succeeded", updates
        assert updates[-1]["outputs"] == {"counted_from": 1, "message": "liftoff"}

    def test_bad_task_runner_messages_get_an_error_and_the_socket_stays_open(
        self, ws_url: str
    ) -> None:
        with connect(f"{ws_url}/tasks", open_timeout=10) as ws:
            for bad in [
                "not json",
                "[1, 2]",
                '{"inputs": {}}',
                '{"task": "no-such-task"}',
                '{"task": "countdown", "inputs": {"start": 99}}',
            ]:
                ws.send(bad)
                answer = json.loads(ws.recv(timeout=10))
                assert answer.keys() == {"error"}, (bad, answer)
                assert isinstance(answer["error"], str) and answer["error"], (bad, answer)
            ws.send(json.dumps({"task": "countdown", "inputs": {"start": 0}}))
            started = json.loads(ws.recv(timeout=10))
            assert started["status"] == "started", started
            last = started
            while last.get("status") != "succeeded":
                last = json.loads(ws.recv(timeout=30))
                assert last.get("status") not in {"failed", "cancelled", "timed_out"}, last
        assert last["outputs"] == {"counted_from": 0, "message": "liftoff"}

    def test_inputs_failing_the_schema_get_an_error_string(self, ws_url: str) -> None:
        with connect(f"{ws_url}/tasks", open_timeout=10) as ws:
            ws.send(json.dumps({"task": "countdown", "inputs": {"start": 99}}))
            answer = json.loads(ws.recv(timeout=10))
        assert answer.keys() == {"error"}
        assert isinstance(answer["error"], str), answer

    def test_the_custom_handler_shouts_and_says_goodbye(self, ws_url: str) -> None:
        with connect(f"{ws_url}/shout", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10)) == {"hello": "send text; 'bye' ends"}
            ws.send("hello")
            assert json.loads(ws.recv(timeout=10)) == {"shout": "HELLO", "length": 5}
            ws.send("bye")
            assert json.loads(ws.recv(timeout=10)) == {"goodbye": True}
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)


def test_every_example_is_covered() -> None:
    """A new example needs its own tests here (browser is in test_browser.py, gateway in
    test_gateway.py)."""
    from tests.e2e.helpers import EXAMPLES

    covered = {
        "quickstart",
        "task-calls-app",
        "webhook-runner",
        "github-webhook",
        "standard-webhooks",
        "app-calls-app",
        "websockets",
        "browser",
        "gateway",
    }
    assert {p.name for p in EXAMPLES.iterdir() if (p / "spec.yaml").exists()} == covered
