"""Item 8: the console shows runs only to a browser signed in by the one-time link (or to a
script holding the project's token); any other local user gets a sign-in page, no data.
Driven by a real Chromium against the real control plane."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine.server.console_auth import console_link
from tests.conftest import needs_chromium
from tests.e2e.conftest import EngineProject
from tests.e2e.helpers import RunApi

pytestmark = [pytest.mark.browser, needs_chromium]
TIMEOUT = 30_000  # ms, Playwright's waits; never an assertion about speed


@pytest.fixture(scope="module")
def finished_run(project: EngineProject, web_url: str) -> dict[str, Any]:
    """A run of `echo` with a recognisable input, finished."""
    started = httpx.post(f"{web_url}/run", json={"x": 424242}, timeout=30, trust_env=False)
    assert started.status_code < 300, started.text
    return RunApi(project).finished(started.json()["id"])


def _token(project: EngineProject) -> str:
    info = project.control_plane()
    assert info is not None
    return str(info["token"])


def test_without_a_sign_in_nothing_of_a_run_is_shown(
    project: EngineProject, finished_run: dict[str, Any]
) -> None:
    console = RunApi(project).url
    with httpx.Client(base_url=console, trust_env=False, timeout=30) as anyone:
        for path in ["/", f"/runs/{finished_run['id']}", f"/runs/{finished_run['id']}.json"]:
            response = anyone.get(path)
            assert response.status_code == 401, path
            assert "424242" not in response.text and finished_run["id"] not in response.text
            assert "engine status" in response.text
        login = f"engine_console_{'0' * 12}"
        forged = anyone.get("/", headers={"Cookie": f"{login}=forged; a=b"})
        assert forged.status_code == 401
        assert anyone.get("/login", params={"code": "1.2.3"}).status_code == 403
        with_token = anyone.get(
            f"/runs/{finished_run['id']}.json",
            headers={"Authorization": f"Bearer {_token(project)}"},
        )
        assert with_token.status_code == 200 and with_token.json()["inputs"] == {"x": 424242}


def test_a_person_signs_in_by_the_link_and_uses_the_console(
    browser: Any, project: EngineProject, finished_run: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    console = RunApi(project).url
    link = console_link(console, _token(project))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(console + "/")
        expect(page.locator("h1")).to_contain_text("Sign in to the console")
        assert "424242" not in page.content()

        page.goto(link)
        expect(page).to_have_url(console + "/")
        row = page.locator(f"tr[data-run='{finished_run['id']}']")
        expect(row.locator(".badge")).to_have_text("succeeded", timeout=TIMEOUT)
        row.get_by_role("link", name=finished_run["id"]).click()
        expect(page.locator("#inputs")).to_contain_text("424242")
        expect(page.locator("#status")).to_have_text("succeeded", timeout=TIMEOUT)
        page.screenshot(path="/tmp/security-console-signed-in.png", full_page=True)
        (cookie,) = context.cookies()
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        assert _token(project) not in page.content() and _token(project) not in cookie["value"]
    finally:
        context.close()

    other = browser.new_context()  # another person, with the link seen over a shoulder
    try:
        page = other.new_page()
        response = page.goto(link)
        assert response is not None and response.status == 403
        page.goto(console + "/")
        expect(page.locator("h1")).to_contain_text("Sign in to the console")
    finally:
        other.close()
