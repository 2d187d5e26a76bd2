"""End to end in a real browser: the `browser` example's page, and the console of a project.

Debian's Chromium at /usr/bin/chromium, driven by Playwright; no browser is ever downloaded.
Screenshots go to /tmp/e2e-*.png, to look at what a person sees.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest

from engine.server.console_auth import console_link
from tests.conftest import needs_chromium
from tests.e2e.helpers import (
    RunApi,
    app_urls,
    applied_example,
    client,
    github_headers,
    github_payload,
)

TIMEOUT = 30_000  # ms, for Playwright's waits: generous, never an assertion about speed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    needs_chromium,
]


def test_the_browser_examples_page_greets_the_person_who_clicks(
    page: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import expect

    with applied_example(tmp_path_factory, "browser") as project:
        urls = app_urls(project)
        assert urls.keys() == {"api", "web", "plain"}

        page.goto(urls["web"] + "/")
        expect(page).to_have_title("engine: browser example")
        page.get_by_label("Name").fill("Ada")
        page.get_by_role("button", name="Greet").click()
        result = page.get_by_role("status")
        expect(result).to_contain_text("Hello, Ada!", timeout=TIMEOUT)
        # the greeting, then the server's time in brackets: what a person reads under the button
        expect(result).to_have_text(
            re.compile(r"^Hello, Ada! \(\d{4}-\d\d-\d\dT[\d:]{8}\+00:00\)$")
        )
        page.screenshot(path="/tmp/e2e-browser-page.png", full_page=True)

        with client(urls["plain"]) as http:
            health = http.get("/health")
            home = http.get("/")
        assert health.status_code == 200
        assert health.json() == {"status": "healthy"}
        assert home.json() == {"message": "Hello from a plain http.server process"}


def test_the_console_shows_the_app_and_a_webhook_started_run(
    page: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import expect

    secret = secrets.token_hex(20)
    env = {"GITHUB_WEBHOOK_SECRET": secret}
    with applied_example(tmp_path_factory, "github-webhook", env) as project:
        hook = app_urls(project)["receiver"] + "/github-webhook"
        body = github_payload("push.new-branch.json")
        with client() as http:
            sent = http.post(hook, content=body, headers=github_headers(secret, "push", body))
        assert sent.status_code == 202, sent.text
        run_id = sent.json()["id"]
        assert RunApi(project).finished(run_id)["status"] == "succeeded"
        console = project.status()["control_plane"]["url"]

        page.goto(console_link(console, RunApi(project).headers["Authorization"][7:]))
        expect(page).to_have_url(console + "/")
        expect(page.locator("tr[data-app=receiver] .badge")).to_have_text("running")
        row = page.locator(f"tr[data-run='{run_id}']")
        expect(row).to_contain_text("deploy")
        expect(row.locator(".badge")).to_have_text("succeeded")
        page.screenshot(path="/tmp/e2e-console-project.png", full_page=True)

        row.get_by_role("link", name=run_id).click()
        expect(page).to_have_url(f"{console}/runs/{run_id}")
        expect(page.locator("h1")).to_contain_text("deploy")
        expect(page.locator("#status")).to_have_text("succeeded", timeout=TIMEOUT)
        after = json.loads(body)["after"]
        expect(page.locator("#outputs")).to_contain_text(after)
        expect(page.locator("#log")).to_contain_text(f"deploying {after[:7]} from master")
        page.screenshot(path="/tmp/e2e-console-run.png", full_page=True)
        assert secret not in page.content()
