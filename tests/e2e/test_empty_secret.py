"""An empty secret that would sign webhooks (an HMAC anybody can compute) or check auth
stops `engine apply` before anything starts, naming the secret and where it comes from."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ProjectFactory

pytestmark = pytest.mark.e2e

SPEC = """\
version: 1
project: e2e-empty
secrets:
  github-secret: {env: E2E_GITHUB_SECRET}
tasks:
  deploy: {handler: tasks:deploy}
apps:
  hooks:
    webhooks:
      - path: /github
        secret: github-secret
        events: {push: {run: {task: deploy}}}
"""
FILES = {"spec.yaml": SPEC, "tasks.py": "def deploy() -> None:\n    pass\n"}


def test_apply_refuses_an_empty_signing_secret(engine_project: ProjectFactory) -> None:
    project = engine_project(FILES, env={"E2E_GITHUB_SECRET": ""})
    result = project.run("apply", "spec.yaml")
    assert result.returncode == 1, str(result)
    assert (
        "secret 'github-secret' is empty, but it signs webhook /github of app 'hooks': "
        "give it a value (from environment variable E2E_GITHUB_SECRET)"
    ) in result.stderr
    assert "Traceback" not in result.output
    assert project.control_plane() is None
