"""The console, served by a real uvicorn and read with httpx and a real Chromium."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from engine.backends.ray.dashboard import RayError
from engine.load import check_spec
from engine.runs.api import run_json
from engine.runs.store import NewRun, Run, RunStatus
from engine.runs.store.sqlite import SQLiteRunStore
from engine.server.console import LOG_TAIL, format_duration, make_console_router, read_log_tail
from engine.server.console_auth import console_link
from engine.spec.model import Spec
from tests.conftest import needs_chromium

TOKEN = "tok-console-must-never-show-this"
SCRIPT = "<script>alert('x')</script>"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free 127.0.0.1 port; stop it on exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    path = tmp_path / ".engine" / "runs"
    path.mkdir(parents=True)
    return path


T = TypeVar("T")


class SyncStore:
    """The run store driven from the test's thread (the console's server has its loop)."""

    def __init__(self, path: Path) -> None:
        self.store = SQLiteRunStore(path)
        self._thread = ThreadPoolExecutor(1)  # its own loop: a browser test runs one here

    def call(self, step: Coroutine[Any, Any, T]) -> T:
        return self._thread.submit(asyncio.run, step).result()

    def close(self) -> None:
        self.call(self.store.close())
        self._thread.shutdown()

    def create(
        self, task: str, inputs: dict[str, Any], *, max_attempts: int = 1,
        logs_dir: Path | None = None,
    ) -> Run:  # fmt: skip
        items = [NewRun(task, inputs, max_attempts)]
        return self.call(self.store.create_many(items, logs_dir=logs_dir))[0].run

    def start_attempt(self, run_id: str) -> Run | None:
        return self.call(self.store.start_attempt(run_id))

    def finish(self, run_id: str, status: RunStatus, **result: Any) -> Run | None:
        either = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
        return self.call(self.store.finish(run_id, status, expect=either, **result))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SyncStore]:
    store = SyncStore(tmp_path / ".engine" / "runs.db")
    yield store
    store.close()


@pytest.fixture
def apps() -> list[dict[str, Any]]:
    """What the supervisor reports; tests may change it before a page is read."""
    return [
        {
            "name": "api",
            "state": "running",
            "url": "http://127.0.0.1:8801",
            "port": 8801,
            "pid": 4242,
            "restarts": 0,
            "description": "Adds one to x.",
        },
        {
            "name": "worker-ui",
            "state": "backoff",
            "url": "http://127.0.0.1:8802",
            "port": 8802,
            "pid": None,
            "restarts": 3,  # no "description": the supervisor's status has none
        },
    ]


SPEC = """\
version: 1
project: shop
secrets:
  api-token: {env: API_TOKEN}
  github-secret: {env: GITHUB_SECRET}
apps:
  api:
    description: Adds one to x.
    depends_on: [worker-ui]
    auth: {bearer: api-token}
    routes:
      - {method: GET, path: /add, query: {x: {type: integer}}, handler: handlers:add}
      - {method: POST, path: /report, run: {task: report, wait: true}, auth: none}
      - {method: GET, path: /ping, respond: {status: 204}}
      - {method: GET, path: /ui, proxy: {app: worker-ui}}
    webhooks:
      - {path: /github, secret: github-secret, events: {push: {run: {task: report}}}}
    websockets:
      - {path: /echo, pattern: echo}
  worker-ui:
    command: [python3, -m, http.server, "{port}"]
tasks:
  report: {handler: tasks:report, description: Writes a report.}
"""


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Spec:
    """The applied spec the console reads routes and descriptions from."""
    folder = tmp_path_factory.mktemp("shop")
    (folder / "spec.yaml").write_text(SPEC)
    (folder / "handlers.py").write_text("def add(x):\n    return x + 1\n")
    (folder / "tasks.py").write_text("def report():\n    return 1\n")
    environ = {"API_TOKEN": "t" * 20, "GITHUB_SECRET": "g" * 20}
    return check_spec(folder / "spec.yaml", environ).spec


@pytest.fixture
def app_logs() -> dict[str, str]:
    """The end of each app's log, as the control plane would read it; tests may set them."""
    return {"api": "api: ready\n"}


@pytest.fixture
def console(
    store: SyncStore, apps: list[dict[str, Any]], declared: Spec, app_logs: dict[str, str]
) -> Iterator[str]:
    """The base URL of a control plane serving only the console."""

    async def app_log(name: str) -> str:
        log = app_logs.get(name, "")
        if isinstance(log, Exception):  # a cluster's log API that is away
            raise log
        return log

    async def listed() -> list[dict]:
        return apps

    app = FastAPI()
    router = make_console_router(
        project=lambda: "shop",
        apps=listed,
        store=store.store,
        token=TOKEN,
        spec=lambda: declared,
        app_log=app_log,
    )
    app.include_router(router)
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    """One TLS context for every client: building one per client costs a tenth of a second."""
    return ssl.create_default_context()


@pytest.fixture
def client(console: str, tls: ssl.SSLContext) -> Iterator[httpx.Client]:
    """A client that sends the project's token, as scripts do (browsers use the cookie)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=console, timeout=10, verify=tls, headers=auth) as client:
        yield client


def finished(store: SyncStore, run: Run, status: RunStatus, **result: Any) -> Run:
    store.start_attempt(run.id)
    done = store.finish(run.id, status, **result)
    assert done is not None
    return done


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)">', html)


# The project page


def test_project_page_lists_the_apps(client: httpx.Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<title>shop · engine</title>" in html
    assert re.findall(r'<tr data-app="([^"]+)">', html) == ["api", "worker-ui"]
    assert '<span class="badge running">running</span>' in html
    assert '<span class="badge backoff">backoff</span>' in html
    assert '<a href="http://127.0.0.1:8801">http://127.0.0.1:8801</a>' in html
    assert '<a href="http://127.0.0.1:8801/docs">docs</a>' in html
    assert '<div class="muted small">Adds one to x.</div>' in html
    assert '<td class="num">3</td>' in html


def test_an_app_url_that_is_not_http_is_shown_but_not_linked(
    client: httpx.Client, apps: list[dict[str, Any]]
) -> None:
    apps[:] = [{**apps[0], "url": "javascript:alert(1)", "state": "weird", "name": "<b>x</b>"}]

    html = client.get("/").text

    assert 'href="javascript' not in html
    assert '<span class="muted">javascript:alert(1)</span>' in html
    assert '<span class="badge unknown">weird</span>' in html
    link = '<a class="nowrap strong" href="/apps/%3Cb%3Ex%3C%2Fb%3E">&lt;b&gt;x&lt;/b&gt;</a>'
    assert link in html


def test_a_project_without_apps_or_runs_says_so(
    client: httpx.Client, apps: list[dict[str, Any]]
) -> None:
    apps.clear()

    html = client.get("/").text

    assert "This project has no apps." in html
    assert "No runs yet." in html


def test_runs_are_listed_newest_first_linking_to_their_pages(
    client: httpx.Client, store: SyncStore
) -> None:
    first = finished(store, store.create("add", {"x": 1}), RunStatus.SUCCEEDED, outputs=2)
    second = store.create("report", {})

    html = client.get("/").text

    assert run_ids(html) == [second.id, first.id]
    assert f'<a class="mono" href="/runs/{first.id}">{first.id}</a>' in html
    assert '<a href="/?task=add">add</a>' in html
    assert '<span class="badge succeeded">succeeded</span>' in html
    assert '<span class="badge queued">queued</span>' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["q-report", "f-add", "s-add"]),
        ("?task=add", ["f-add", "s-add"]),
        ("?status=succeeded", ["s-add"]),
        ("?task=add&status=failed", ["f-add"]),
        ("?task=&status=", ["q-report", "f-add", "s-add"]),
        ("?task=report&status=failed", []),
    ],
    ids=["none", "task", "status", "both", "empty-values", "no-match"],
)
def test_runs_filter_by_task_and_status(
    client: httpx.Client, store: SyncStore, query: str, expected: list[str]
) -> None:
    names = {
        finished(store, store.create("add", {}), RunStatus.SUCCEEDED).id: "s-add",
        finished(store, store.create("add", {}), RunStatus.FAILED, error="no").id: "f-add",
        store.create("report", {}).id: "q-report",
    }

    response = client.get(f"/{query}")

    assert response.status_code == 200
    assert [names[i] for i in run_ids(response.text)] == expected
    if not expected:
        assert "No runs match these filters." in response.text


def test_the_filter_form_keeps_the_chosen_values(client: httpx.Client, store: SyncStore) -> None:
    store.create("add", {})
    store.create("report", {})

    html = client.get("/?task=report&status=queued").text

    assert '<option value="report" selected>report</option>' in html
    assert '<option value="add">add</option>' in html
    assert '<option value="queued" selected>queued</option>' in html
    assert '<a href="/">clear</a>' in html


def test_an_unknown_status_filter_gets_a_friendly_400(client: httpx.Client) -> None:
    response = client.get("/?status=done")

    assert response.status_code == 400
    assert "<h1>Unknown status</h1>" in response.text
    assert "There is no run status “done”." in response.text


# The run page


def test_run_page_shows_the_run(client: httpx.Client, store: SyncStore, logs_dir: Path) -> None:
    run = store.create("add", {"x": 41}, max_attempts=3, logs_dir=logs_dir)
    Path(run.log_path or "").write_text("adding one\n")
    finished(store, run, RunStatus.SUCCEEDED, outputs={"y": 42})

    response = client.get(f"/runs/{run.id}")

    assert response.status_code == 200
    html = response.text
    assert f"<title>add {run.id} · shop · engine</title>" in html
    assert '<h1>add <span id="status" class="badge succeeded">succeeded</span></h1>' in html
    assert '<dd id="attempts">1 of 3</dd>' in html
    assert re.search(r'<dd id="finished">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</dd>', html)
    assert '<pre id="inputs">{\n  &#34;x&#34;: 41\n}</pre>' in html
    assert '<pre id="outputs">{\n  &#34;y&#34;: 42\n}</pre>' in html
    assert '<section id="error-section" hidden>' in html
    assert '<pre id="log" class="log">adding one\n</pre>' in html
    assert '<p id="log-cut" class="muted small" hidden>' in html
    assert "console.js" not in html  # a final run's page does not poll


def test_a_failed_run_shows_its_error(client: httpx.Client, store: SyncStore) -> None:
    run = finished(store, store.create("add", {}), RunStatus.FAILED, error="ValueError: boom")

    html = client.get(f"/runs/{run.id}").text

    assert '<section id="error-section">' in html
    assert '<pre id="error" class="error">ValueError: boom</pre>' in html
    assert '<pre id="outputs">—</pre>' in html
    assert "No output." in html


def test_a_live_run_page_loads_the_script_and_refreshes_without_it(
    client: httpx.Client, store: SyncStore
) -> None:
    run = store.create("add", {})
    store.start_attempt(run.id)

    html = client.get(f"/runs/{run.id}").text

    assert re.search(r'<script src="/console/static/console.js\?v=\w+" defer></script>', html)
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
    assert f'data-json="/runs/{run.id}.json" data-final="false"' in html
    assert "No output yet." in html


def test_untrusted_run_data_is_escaped(
    client: httpx.Client, store: SyncStore, logs_dir: Path
) -> None:
    run = store.create("add", {"x": SCRIPT}, logs_dir=logs_dir)
    Path(run.log_path or "").write_text(f"{SCRIPT}\n")
    finished(store, run, RunStatus.FAILED, error=SCRIPT, outputs=[SCRIPT])

    html = client.get(f"/runs/{run.id}").text

    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") == 4


def test_an_unknown_run_gets_a_friendly_404_page(client: httpx.Client) -> None:
    response = client.get("/runs/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Run not found</h1>" in response.text
    assert "There is no run “nope” in shop." in response.text
    assert '<a href="/">← Back to shop</a>' in response.text


def test_a_long_log_shows_only_its_last_200_kb(
    client: httpx.Client, store: SyncStore, logs_dir: Path
) -> None:
    run = store.create("add", {}, logs_dir=logs_dir)
    lines = [f"line {i:06d}\n" for i in range(40_000)]  # 480 KB
    Path(run.log_path or "").write_text("".join(lines))

    html = client.get(f"/runs/{run.id}").text

    log = re.search(r'<pre id="log" class="log">(.*?)</pre>', html, re.S)
    assert log is not None
    assert len(log.group(1)) <= LOG_TAIL
    assert log.group(1).startswith("line ")
    assert log.group(1).endswith("line 039999\n")
    assert "line 000000" not in html
    assert '<p id="log-cut" class="muted small">' in html


# The run as JSON


def test_run_json_is_the_run_api_shape_plus_the_log(
    client: httpx.Client, console: str, store: SyncStore, logs_dir: Path
) -> None:
    run = store.create("add", {"x": 1}, logs_dir=logs_dir)
    Path(run.log_path or "").write_text("one\ntwo\n")
    run = finished(store, run, RunStatus.SUCCEEDED, outputs={"y": 2})

    response = client.get(f"/runs/{run.id}.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        **run_json(run, console),
        "finished": True,
        "max_attempts": 1,
        "duration": body["duration"],
        "log": {"start": 0, "end": 8, "text": "one\ntwo\n", "cut": False},
    }
    assert body["url"] == f"{console}/runs/{run.id}"
    assert body["duration"].endswith("ms")


def test_run_json_sends_the_log_from_an_offset(
    client: httpx.Client, store: SyncStore, logs_dir: Path
) -> None:
    run = store.create("add", {}, logs_dir=logs_dir)
    Path(run.log_path or "").write_text("one\ntwo\n")

    log = client.get(f"/runs/{run.id}.json", params={"log_from": 4}).json()["log"]

    assert log == {"start": 4, "end": 8, "text": "two\n", "cut": False}


def test_run_json_of_an_unknown_run_is_404(client: httpx.Client) -> None:
    response = client.get("/runs/nope.json")

    assert response.status_code == 404
    assert response.json() == {"detail": "no run 'nope'"}


# Access


def test_pages_never_show_the_token(client: httpx.Client, store: SyncStore) -> None:
    run = store.create("add", {})

    for path in ["/", f"/runs/{run.id}", f"/runs/{run.id}.json", "/runs/nope"]:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert TOKEN not in response.text, path


def test_pages_forbid_inline_script_and_framing(client: httpx.Client) -> None:
    csp = client.get("/").headers["content-security-policy"]

    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example"])
def test_a_non_loopback_host_is_refused(client: httpx.Client, host: str) -> None:
    # What a DNS-rebinding page would send from a person's browser.
    assert client.get("/", headers={"host": host}).status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8700", "[::1]:8700", "[::1]"])
def test_loopback_hosts_are_served(client: httpx.Client, host: str) -> None:
    assert client.get("/", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")],
)
def test_static_files_are_served(client: httpx.Client, name: str, content_type: str) -> None:
    response = client.get(f"/console/static/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert "immutable" in response.headers["cache-control"]


def test_an_unknown_static_file_is_404(client: httpx.Client) -> None:
    assert client.get("/console/static/..%2Fconsole.py").status_code == 404
    assert client.get("/console/static/other.js").status_code == 404


# The app page


def cells(html: str) -> list[list[str]]:
    """The text of each cell of the endpoints table, row by row."""
    body = html.split('<table class="endpoints">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]  # fmt: skip


def test_the_app_page_shows_its_state_url_restarts_and_log(
    client: httpx.Client, apps: list[dict[str, Any]]
) -> None:
    response = client.get("/apps/api")

    assert response.status_code == 200
    html = response.text
    assert "<title>api · shop · engine</title>" in html
    assert '<span id="state" class="badge running">running</span>' in html
    assert '<a id="url" href="http://127.0.0.1:8801">http://127.0.0.1:8801</a>' in html
    assert '<dd id="pid">4242</dd>' in html and '<dd id="restarts">0</dd>' in html
    assert '<span id="failure" class="muted">none since it was deployed</span>' in html
    assert '<pre id="log" class="log">api: ready\n</pre>' in html
    assert '<main data-live="/apps/api.json">' in html
    assert re.search(r'<script src="/console/static/live.js\?v=\w+" defer></script>', html)
    assert '<a class="nowrap strong" href="/apps/api">api</a>' in client.get("/").text


def test_the_app_page_lists_what_the_app_answers_without_secrets(client: httpx.Client) -> None:
    html = client.get("/apps/api").text

    assert cells(html) == [
        ["GET", "/health", "health check", "open"],
        ["GET", "/add", "calls handlers:add", "bearer token"],
        ["POST", "/report", "starts a run of report and waits for it", "open"],
        ["GET", "/ping", "answers 204", "bearer token"],
        ["GET", "/ui", "forwards to worker-ui · app", "bearer token"],
        ["POST", "/github", "github webhook “push”: starts a run of report", "github signature"],
        ["WS", "/echo", "echo WebSocket", "bearer token"],
    ]
    assert '<a href="/apps/worker-ui">app</a>' in html
    assert "t" * 20 not in html and "g" * 20 not in html


def test_a_failing_app_shows_why_and_its_state_in_words(
    client: httpx.Client, apps: list[dict[str, Any]], app_logs: dict[str, str]
) -> None:
    apps[1]["state"] = "failed"
    apps[1]["detail"] = "app 'worker-ui' exited before it was healthy; the end of its log:\n<boom>"
    app_logs["worker-ui"] = "Traceback: <boom>\n"

    html = client.get("/apps/worker-ui").text

    assert '<span id="state" class="badge failed">failed</span>' in html
    assert '<dd id="restarts">3</dd>' in html
    assert (
        '<pre id="failure" class="error">app &#39;worker-ui&#39; exited before it was healthy;'
        " the end of its log:\n&lt;boom&gt;</pre>"
    ) in html
    assert '<pre id="log" class="log">Traceback: &lt;boom&gt;\n</pre>' in html
    assert "This app runs its own command" in html


def test_a_log_api_that_is_away_leaves_the_app_page_readable(
    client: httpx.Client, app_logs: dict[str, Any]
) -> None:
    # A backend wraps its transport's errors (httpx's, urllib3's) in an EngineError.
    app_logs["api"] = RayError("connection refused")

    html = client.get("/apps/api").text

    assert "(the log cannot be read now: connection refused)" in html


def test_the_app_json_sends_its_facts_and_log_again(
    client: httpx.Client, apps: list[dict[str, Any]], app_logs: dict[str, str]
) -> None:
    apps[0]["restarts"] = 2
    app_logs["api"] = "api: ready\napi: <again>\n"

    response = client.get("/apps/api.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["text"] == {"log": "api: ready\napi: <again>\n"}
    assert '<dd id="restarts">2</dd>' in body["html"]["facts"]
    assert client.get("/apps/nope.json").status_code == 404


def test_an_unknown_app_gets_a_friendly_404_page(client: httpx.Client) -> None:
    response = client.get("/apps/nope")

    assert response.status_code == 404
    assert "<h1>App not found</h1>" in response.text
    assert "There is no app “nope” in shop." in response.text


def test_the_project_json_sends_the_lists_again(client: httpx.Client, store: SyncStore) -> None:
    run = store.create("report", {})

    body = client.get("/project.json", params={"task": "report"}).json()

    assert set(body["html"]) == {"app-rows", "run-rows"}
    assert '<tr data-app="worker-ui">' in body["html"]["app-rows"]
    assert f'<tr data-run="{run.id}">' in body["html"]["run-rows"]
    assert client.get("/project.json", params={"status": "done"}).status_code == 400
    assert (
        '<main data-live="/project.json?task=report&amp;status=">'
        in client.get("/?task=report").text
    )


# Forms that change something: only from the console's own page


@contextmanager
def signed_in(console: str, tls: ssl.SSLContext) -> Iterator[httpx.Client]:
    """A client signed in through a one-time link, as a browser is (it keeps the cookie)."""
    with httpx.Client(base_url=console, timeout=10, verify=tls) as client:
        assert client.get(console_link(console, TOKEN)).status_code == 303
        yield client


def test_each_session_gets_its_own_form_token(
    console: str, tls: ssl.SSLContext, store: SyncStore
) -> None:
    run = store.create("report", {})
    with signed_in(console, tls) as one, signed_in(console, tls) as two:
        cookies = [dict(c.cookies) for c in (one, two)]
        tokens = [_form_token(c, run.id) for c in (one, two)]
    assert cookies[0] != cookies[1]
    assert tokens[0] != tokens[1]
    assert TOKEN not in str(cookies) + str(tokens)


@pytest.mark.parametrize(
    ("headers", "data", "status"),
    [
        ({"Origin": "http://evil.example"}, {"form_token": "session"}, 403),
        ({"Origin": "null"}, {"form_token": "session"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, {"form_token": "session"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, {"form_token": "session"}, 403),
        ({}, {"go": "1"}, 403),
        ({}, {"form_token": "other"}, 403),
        ({"Content-Type": "text/plain"}, "form_token=session", 415),
    ],
    ids=["foreign-origin", "null-origin", "cross-site", "same-site", "no-token",
         "wrong-token", "not-a-form"],
)  # fmt: skip
def test_a_post_that_is_not_from_the_console_is_refused(
    console: str,
    tls: ssl.SSLContext,
    store: SyncStore,
    headers: dict[str, str],
    data: Any,
    status: int,
) -> None:
    run = store.create("report", {})
    with signed_in(console, tls) as browser, signed_in(console, tls) as other:
        token, other_token = _form_token(browser, run.id), _form_token(other, run.id)
        if isinstance(data, dict) and "form_token" in data:
            data = {"form_token": token if data["form_token"] == "session" else other_token}
        elif isinstance(data, str):
            data = data.replace("session", token)
        sent = {"data": data} if isinstance(data, dict) else {"content": data}
        response = browser.post(f"/runs/{run.id}/cancel", headers=headers, **sent)

    assert response.status_code == status
    assert "<h1>Nothing was cancelled</h1>" in response.text
    assert store.call(store.store.get(run.id)).status == RunStatus.QUEUED  # type: ignore[union-attr]


def test_a_post_without_a_sign_in_is_401(console: str, store: SyncStore) -> None:
    run = store.create("report", {})
    with httpx.Client(base_url=console, timeout=10) as anyone:
        assert anyone.post(f"/runs/{run.id}/cancel", data={"x": "1"}).status_code == 401
        assert anyone.post("/tasks/report", data={"x": "1"}).status_code == 401


def test_a_form_too_large_is_413(console: str, tls: ssl.SSLContext, store: SyncStore) -> None:
    run = store.create("report", {})
    with signed_in(console, tls) as browser:
        token = _form_token(browser, run.id)
        response = browser.post(
            f"/runs/{run.id}/cancel", data={"form_token": token, "big": "x" * 300_000}
        )
    assert response.status_code == 413


def _form_token(client: httpx.Client, run_id: str) -> str:
    html = client.get(f"/runs/{run_id}").text
    found = re.search(r'<input type="hidden" name="form_token" value="([^"]+)">', html)
    assert found, html
    return found.group(1)


def test_without_a_runner_there_are_no_task_pages(client: httpx.Client) -> None:
    response = client.get("/tasks/report")

    assert response.status_code == 404
    assert "<h1>Task not found</h1>" in response.text
    assert "Its tasks are: none." in response.text


# Helpers


def test_read_log_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    empty = {"start": 0, "end": 0, "text": "", "cut": False}
    assert read_log_tail(str(tmp_path / "none.log")) == empty
    assert read_log_tail(None) == empty


def test_read_log_tail_holds_back_an_unfinished_character(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes("café ☕".encode()[:-1])

    assert read_log_tail(str(log)) == {"start": 0, "end": 6, "text": "café ", "cut": False}
    log.write_bytes("café ☕".encode())
    assert read_log_tail(str(log), 6) == {"start": 6, "end": 9, "text": "☕", "cut": False}


def test_read_log_tail_starts_over_when_the_log_shrank(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("new\n")

    assert read_log_tail(str(log), 100) == {"start": 0, "end": 4, "text": "new\n", "cut": False}


def test_read_log_tail_keeps_the_last_200_kb_from_a_line_start(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"".join(b"%05d\n" % i for i in range(LOG_TAIL // 6 + 100)))
    size = log.stat().st_size

    tail = read_log_tail(str(log))

    assert tail["cut"] is True
    assert tail["start"] % 6 == 0
    assert size - LOG_TAIL <= tail["start"] < size - LOG_TAIL + 6
    assert tail["text"].endswith(f"{LOG_TAIL // 6 + 99:05d}\n")
    assert read_log_tail(str(log), size - 6)["cut"] is False


def test_read_log_tail_of_one_long_line_cuts_it_at_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"x" * (LOG_TAIL + 10))

    tail = read_log_tail(str(log))

    assert (tail["start"], tail["end"], tail["cut"]) == (10, LOG_TAIL + 10, True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.042, "42 ms"),
        (4.2, "4.20 s"),
        (12.34, "12.3 s"),
        (245, "4 min 05 s"),
        (7380, "2 h 03 min"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# In a real browser


@pytest.mark.browser
@needs_chromium
def test_a_person_opens_a_run_from_the_project_page(
    page: Any, console: str, store: SyncStore, logs_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run = store.create("add", {"x": 41}, logs_dir=logs_dir)
    Path(run.log_path or "").write_text("adding one to 41\n")
    finished(store, run, RunStatus.SUCCEEDED, outputs={"y": 42})
    finished(store, store.create("report", {}), RunStatus.FAILED, error="boom")

    page.goto(console_link(console, TOKEN))
    expect(page).to_have_title("shop · engine")
    expect(page.locator("tr[data-app=api] .badge")).to_have_text("running")
    page.screenshot(path=str(tmp_path / "project.png"), full_page=True)
    page.get_by_role("link", name=run.id).click()

    expect(page).to_have_url(f"{console}/runs/{run.id}")
    expect(page.locator("h1")).to_contain_text("add")
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#outputs")).to_have_text('{\n  "y": 42\n}')
    expect(page.locator("#log")).to_have_text("adding one to 41\n")
    expect(page.locator("#error-section")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(
    ("status", "result", "shown", "text"),
    [
        (RunStatus.SUCCEEDED, {"outputs": {"sum": 42}}, "#outputs", '"sum": 42'),
        (RunStatus.FAILED, {"error": "ValueError: <b>boom</b>"}, "#error", "<b>boom</b>"),
    ],
    ids=["succeeded", "failed"],
)
def test_a_running_run_page_follows_the_run_without_reloading(
    page: Any,
    console: str,
    store: SyncStore,
    logs_dir: Path,
    status: RunStatus,
    result: dict[str, Any],
    shown: str,
    text: str,
) -> None:
    from playwright.sync_api import expect

    run = store.create("add", {"x": 41}, logs_dir=logs_dir)
    log = Path(run.log_path or "")
    log.write_text("starting\n")
    store.start_attempt(run.id)

    page.goto(console_link(console, TOKEN))
    page.goto(f"{console}/runs/{run.id}")
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#log")).to_have_text("starting\n")
    page.evaluate("window.sameDocument = true")

    with log.open("a") as f:
        f.write("halfway\n")
    expect(page.locator("#log")).to_have_text("starting\nhalfway\n", timeout=10_000)
    with log.open("a") as f:
        f.write("done\n")
    store.finish(run.id, status, **result)

    expect(page.locator("#status")).to_have_text(str(status), timeout=10_000)
    expect(page.locator("#status")).to_have_class(f"badge {status}")
    expect(page.locator(shown)).to_contain_text(text)
    expect(page.locator(shown)).to_be_visible()
    expect(page.locator("#log")).to_have_text("starting\nhalfway\ndone\n")
    expect(page.locator("#finished")).to_contain_text("UTC")
    assert page.evaluate("window.sameDocument") is True
