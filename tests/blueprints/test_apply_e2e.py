"""One scaffolded blueprint applied for real: `engine new`, `engine apply`, an HTTP call,
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
