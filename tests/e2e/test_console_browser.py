"""The console as a person uses it, in a real Chromium, against a real control plane.

One project, applied once for the module with the real CLI: an app with routes and two
tasks, one of which sleeps so that it can be cancelled. The person signs in through the
link `engine status` prints, reads the app's page, starts a run from a task's form,
cancels a slow one, and watches lists change without reloading; pages of another origin
(a real server on another port) try to start runs and are refused, and nothing starts.

Screenshots go to `test-artifacts/console/` at the repository's root (CI keeps that
folder); each test prints where it saved its own.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import needs_chromium
from tests.e2e.conftest import EngineProject, ProjectFactory
from tests.e2e.helpers import REPO, RunApi, client

pytestmark = [pytest.mark.e2e, pytest.mark.browser, needs_chromium]

TIMEOUT = 30_000  # ms, Playwright's waits: generous, never an assertion about speed
SHOTS = REPO / "test-artifacts" / "console"

SPEC = """\
version: 1
project: console-demo
apps:
  api:
    description: Adds one to x, and starts reports.
    routes:
      - {method: GET, path: /add, query: {x: {type: integer}}, handler: handlers:add}
      - {method: POST, path: /report, run: {task: report}}
  flaky:
    description: Falls over when asked to.
    routes:
      - {method: POST, path: /crash, handler: handlers:crash}
tasks:
  report:
    description: Writes a short report.
    handler: tasks:report
    inputs:
      title: {type: string, description: The report's title}
      pages: {type: integer, minimum: 1, maximum: 50, default: 3}
      format: {enum: [pdf, html], default: html}
      draft: {type: boolean, default: false}
      tags: {type: array, items: {type: string}, default: []}
  slow:
    description: Sleeps, so that it can be cancelled.
    handler: tasks:slow
    inputs:
      seconds: {type: number, default: 120}
"""

HANDLERS = """\
import os

print("api: ready to add", flush=True)


def crash() -> dict:
    print("flaky: falling over", flush=True)
    os._exit(3)


def add(x: int) -> dict:
    print(f"api: adding one to {x}", flush=True)
    return {"y": x + 1}
"""

TASKS = """\
import time


def report(title: str, pages: int, format: str, draft: bool, tags: list) -> dict:
    print(f"writing {title!r}: {pages} pages as {format}", flush=True)
    return {"title": title, "pages": pages, "format": format, "draft": draft, "tags": tags}


def slow(seconds: float) -> float:
    print("sleeping", flush=True)
    time.sleep(seconds)
    return seconds
"""


@pytest.fixture(scope="module")
def project(shared_engine_project: ProjectFactory) -> EngineProject:
    """The project, applied once; the factory destroys it (checking every pid) at the end."""
    project = shared_engine_project({"spec.yaml": SPEC, "handlers.py": HANDLERS, "tasks.py": TASKS})
    project.ok("apply", "spec.yaml", "--timeout", "60")
    return project


@pytest.fixture(scope="module")
def console(project: EngineProject) -> str:
    return str(RunApi(project).url)


@pytest.fixture(scope="module")
def person(browser: Any, project: EngineProject, console: str) -> Iterator[Any]:
    """A browser context signed in as a person does: the link `engine status` prints."""
    printed = project.ok("status").output
    link = re.search(r"(http://127\.0\.0\.1:\d+/login\?code=\S+)", printed)
    assert link, printed
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(link.group(1))
    assert page.url == console + "/"
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(person: Any) -> Iterator[Any]:
    page = person.new_page()
    yield page
    page.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_the_app_page_shows_its_state_url_routes_and_a_live_log(
    page: Any, console: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(console + "/")
    row = page.locator("tr[data-app=api]")
    expect(row.locator(".badge")).to_have_text("running")
    expect(page.get_by_role("link", name="report")).to_be_visible()
    shot(page, shots, "home")
    row.get_by_role("link", name="api").click()

    expect(page).to_have_url(console + "/apps/api")
    expect(page.locator("#state")).to_have_text("running")
    expect(page.locator("#state")).to_have_class("badge running")
    url = page.locator("#url").get_attribute("href")
    assert url and re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    expect(page.locator("#restarts")).to_have_text("0")
    expect(page.locator("#failure")).to_have_text("none since it was deployed")
    routes = page.locator("table.endpoints tbody tr")
    expect(routes).to_have_count(3)
    expect(routes.nth(1).locator("td")).to_have_text(["GET", "/add", "calls handlers:add", "open"])
    expect(routes.nth(2).locator("td")).to_have_text(
        ["POST", "/report", "starts a run of report · task", "open"]
    )
    expect(page.locator("#log")).to_contain_text("api: ready to add")

    page.evaluate("window.sameDocument = true")
    with client() as http:
        assert http.get(f"{url}/add", params={"x": 41}).json() == {"y": 42}
    expect(page.locator("#log")).to_contain_text("api: adding one to 41", timeout=TIMEOUT)
    assert page.evaluate("window.sameDocument") is True
    shot(page, shots, "app")

    page.get_by_role("link", name="task").click()
    expect(page).to_have_url(console + "/tasks/report")


def test_the_task_form_starts_a_run_that_succeeds(
    page: Any, project: EngineProject, console: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(console + "/")
    page.get_by_role("link", name="report", exact=True).first.click()
    expect(page).to_have_url(console + "/tasks/report")
    expect(page.locator("h1")).to_have_text("report")
    expect(page.get_by_text("Writes a short report.")).to_be_visible()
    title = page.get_by_label("title")
    expect(title).to_have_attribute("required", "")
    expect(page.get_by_label("pages")).to_have_value("3")
    expect(page.get_by_label("pages")).to_have_attribute("max", "50")
    expect(page.get_by_label("format")).to_have_value('"html"')

    title.fill("Q3 numbers")
    page.get_by_label("pages").fill("7")
    page.get_by_label("format").select_option(label="pdf")
    page.get_by_label("draft").check()
    page.get_by_label("tags").fill('["finance", "q3"]')
    shot(page, shots, "task-form")
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(re.escape(console) + r"/runs/[\w-]+$"))
    expect(page.locator("#status")).to_have_text("succeeded", timeout=TIMEOUT)
    expect(page.locator("#status")).to_have_class("badge succeeded")
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#log")).to_contain_text("writing 'Q3 numbers': 7 pages as pdf")
    shot(page, shots, "run-succeeded")
    run = RunApi(project).run(page.url.rsplit("/", 1)[1])
    assert run["inputs"] == {
        "title": "Q3 numbers",
        "pages": 7,
        "format": "pdf",
        "draft": True,
        "tags": ["finance", "q3"],
    }
    assert run["outputs"] == run["inputs"]


def test_bad_inputs_are_shown_by_their_fields_and_start_nothing(
    page: Any, project: EngineProject, console: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    before = RunApi(project).ids("report")
    page.goto(console + "/tasks/report")
    page.get_by_label("title").fill("broken")
    page.get_by_label("tags").fill('["unclosed"')
    with page.expect_navigation() as sent:
        page.get_by_role("button", name="Start run").click()

    assert sent.value.status == 422
    expect(page.locator(".problem")).to_have_text("Fix the inputs below.")
    error = page.locator(".field.invalid .field-error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("This is not valid JSON")
    expect(page.get_by_label("tags")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("title")).to_have_value("broken")  # what was typed stays
    shot(page, shots, "task-form-invalid")
    assert RunApi(project).settled("report") == before


def test_a_slow_run_is_cancelled_from_its_page(
    page: Any, project: EngineProject, console: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(console + "/tasks/slow")
    expect(page.get_by_label("seconds")).to_have_value("120")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(re.escape(console) + r"/runs/[\w-]+$"))
    expect(page.locator("#status")).to_have_text("running", timeout=TIMEOUT)
    expect(page.locator("#log")).to_contain_text("sleeping", timeout=TIMEOUT)
    shot(page, shots, "run-running")

    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#status")).to_have_text("cancelled", timeout=TIMEOUT)
    expect(page.locator("#status")).to_have_class("badge cancelled")
    expect(page.locator("#cancel")).to_have_count(0)
    shot(page, shots, "run-cancelled")
    assert RunApi(project).run(page.url.rsplit("/", 1)[1])["status"] == "cancelled"


def test_the_project_page_lists_a_new_run_without_reloading(
    page: Any, project: EngineProject, console: str
) -> None:
    from playwright.sync_api import expect

    page.goto(console + "/")
    page.evaluate("window.sameDocument = true")
    api = RunApi(project)
    with client(api.url, headers=api.headers) as http:
        started = http.post("/api/v1/runs", json={"task": "report", "inputs": {"title": "live"}})
    assert started.status_code == 201, started.text
    row = page.locator(f"tr[data-run='{started.json()['id']}']")
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=TIMEOUT)
    assert page.evaluate("window.sameDocument") is True

    # States differ by colour as well as by their word.
    colours = page.evaluate(
        """[...document.querySelectorAll("#run-rows .badge")].map(
            b => [b.textContent, getComputedStyle(b).backgroundColor])"""
    )
    by_state = dict(colours)
    assert by_state["succeeded"] != by_state["cancelled"], colours


def test_an_app_that_crashed_shows_why_and_its_restart(page: Any, console: str) -> None:
    from playwright.sync_api import expect

    page.goto(console + "/apps/flaky")
    expect(page.locator("#state")).to_have_text("running")
    url = page.locator("#url").get_attribute("href")
    with client() as http, pytest.raises(httpx.TransportError):
        http.post(f"{url}/crash")  # the process exits before it answers

    expect(page.locator("#failure")).to_have_text("exited with code 3", timeout=TIMEOUT)
    expect(page.locator("#restarts")).to_have_text("1", timeout=TIMEOUT)
    expect(page.locator("#state")).to_have_text("running", timeout=TIMEOUT)
    expect(page.locator("#log")).to_contain_text("flaky: falling over")
    page.goto(console + "/")
    expect(page.locator("tr[data-app=flaky] td.num").last).to_have_text("1")


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page of another origin that submits a form to the console as soon as it loads."""

    pages: dict[str, str] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path, "").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[tuple[str, dict[str, str]]]:
    """Another origin, 127.0.0.1 on another port (so the same site, and the cookie goes
    along): its URL and the pages it serves (path -> HTML)."""
    pages: dict[str, str] = {}
    handler = type("Handler", (_Attacker,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _forging_page(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<!doctype html><form id="f" method="post" action="{action}">{inputs}</form>'
        "<script>document.getElementById('f').submit()</script>"
    )


def test_a_cross_site_post_is_refused_and_starts_nothing(
    page: Any,
    person: Any,
    project: EngineProject,
    console: str,
    attacker: tuple[str, dict[str, str]],
    shots: Path,
) -> None:
    from playwright.sync_api import expect

    api = RunApi(project)
    page.goto(console + "/tasks/slow")
    token = page.locator("input[name=form_token]").get_attribute("value")
    assert token
    with client(api.url, headers=api.headers) as http:
        running = http.post("/api/v1/runs", json={"task": "slow", "inputs": {}}).json()
    before = api.ids()

    # Even with the page's form token (leaked), a form from another origin is refused.
    site, pages = attacker
    start, cancel = f"{console}/tasks/report", f"{console}/runs/{running['id']}/cancel"
    pages["/start"] = _forging_page(start, {"form_token": token, "input.title": "forged"})
    pages["/cancel"] = _forging_page(cancel, {"form_token": token})
    for path, title in [("/start", "Nothing was started"), ("/cancel", "Nothing was cancelled")]:
        with page.expect_navigation(url=re.compile(re.escape(console))) as sent:
            page.goto(site + path)
        assert sent.value.status == 403
        expect(page.locator("h1")).to_have_text(title)
    shot(page, shots, "cross-site-refused")

    # The same, sent by a script holding the person's cookie: a foreign Origin, or no token.
    (cookie,) = [c for c in person.cookies() if c["name"].startswith("engine_console_")]
    jar = {"Cookie": f"{cookie['name']}={cookie['value']}"}
    with httpx.Client(trust_env=False, timeout=30, headers=jar) as http:
        forged = {"form_token": token, "input.title": "forged"}
        foreign = http.post(start, data=forged, headers={"Origin": "http://evil.example"})
        tokenless = http.post(start, data={"input.title": "forged"})
        wrong = http.post(start, data={**forged, "form_token": "x" * len(token)})
        json_body = http.post(start, json=forged)
        cancelled = http.post(cancel, data={"go": "1"})
    with httpx.Client(trust_env=False, timeout=30) as anyone:
        signed_out = anyone.post(start, data=forged)
    assert [r.status_code for r in (foreign, tokenless, wrong, cancelled)] == [403] * 4
    assert json_body.status_code == 415
    assert signed_out.status_code == 401

    assert api.settled() == before
    assert api.run(running["id"])["status"] == "running"
    with client(api.url, headers=api.headers) as http:
        http.post(f"/api/v1/runs/{running['id']}/cancel")


@pytest.mark.parametrize("where", ["/", "/apps/api", "/tasks/report", "run"])
def test_every_page_fits_a_400_px_wide_screen(
    page: Any, project: EngineProject, console: str, shots: Path, where: str
) -> None:
    from playwright.sync_api import expect

    name = "narrow-" + (where.strip("/").replace("/", "-") or "home")
    if where == "run":
        where = "/runs/" + RunApi(project).runs()[0]["id"]
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(console + where)
    expect(page.locator("main")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"{where} is {width} px wide at a 400 px viewport"
    shot(page, shots, name)
