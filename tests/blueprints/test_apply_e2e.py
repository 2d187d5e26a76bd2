"""Scaffolded blueprints applied for real: `engine new`, `engine apply`, HTTP calls,
`engine destroy`. Processes are stopped by destroy and then checked by pid (never by name),
with the e2e suite's own project helper."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.e2e


def test_quickstart_applies_and_answers(tmp_path: Path) -> None:
    from engine.cli_new import new
    from tests.e2e import conftest as helpers

    target = tmp_path / "hello-project"
    result = CliRunner().invoke(new, ["quickstart", str(target), "--set", "greeting=Howdy"])
    assert result.exit_code == 0, result.output
    project = helpers.EngineProject(target, helpers.base_env())
    try:
        project.ok("apply")
        [app] = project.status()["apps"]
        assert (app["name"], app["state"]) == ("hello", "running")
        answer = httpx.get(f"{app['url']}/", params={"name": "Ada"}, timeout=10, trust_env=False)
        assert (answer.status_code, answer.json()) == (200, {"message": "Howdy, Ada!"})
    finally:
        leftovers = project.teardown()
    assert leftovers == []


# Each built-in, scaffolded with its defaults, applied, and every app asked for its health
# and its OpenAPI docs; the secrets a blueprint declares get values in the environment.
BUILT_INS = [
    "app-calls-app",
    "browser-app",
    "github-webhook",
    "quickstart",
    "task-calls-app",
    "webhook-runner",
    "websocket-chat",
]
SECRET_VALUES = {"GITHUB_WEBHOOK_SECRET": "gh-secret", "WEBHOOK_API_KEY": "api-key"}


def test_every_built_in_blueprint_is_covered() -> None:
    from engine.blueprints.catalog import available

    assert sorted(available(environ={})) == BUILT_INS


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_applies_with_its_defaults_and_answers(name: str, tmp_path: Path) -> None:
    from engine.cli_new import new
    from tests.e2e import conftest as helpers

    target = tmp_path / "project"
    result = CliRunner().invoke(new, [name, str(target)])
    assert result.exit_code == 0, result.output
    project = helpers.EngineProject(target, helpers.base_env(**SECRET_VALUES))
    try:
        project.ok("apply")
        apps = project.status()["apps"]
        assert apps, name
        for app in apps:
            assert app["state"] == "running", app
            health = httpx.get(f"{app['url']}/health", timeout=10, trust_env=False)
            assert health.status_code == 200, (app["name"], health.text)
            docs = httpx.get(f"{app['url']}/openapi.json", timeout=10, trust_env=False)
            assert docs.status_code == 200, (app["name"], docs.text)
    finally:
        leftovers = project.teardown()
    assert leftovers == []
