"""One real project for the security tests, applied once with the real CLI.

Each test module is one defence (docs/security.md lists them). The project has what an
attacker would aim at: a static folder, a route that starts runs, signed webhooks, a
header built from an expression, secrets in a file and in the environment, and a task.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import EngineProject, base_env

WHSEC = "whsec_" + base64.b64encode(b"s" * 32).decode()
GITHUB_SECRET = "gh-secret-value"

SPEC = """\
version: 1
project: guarded
secrets:
  github-secret: {file: secrets/github.txt}
  billing-secret: {env: BILLING_SECRET}
apps:
  web:
    static: {path: /, dir: web/}
    routes:
      - {method: POST, path: /run, run: {task: echo, inputs: {x: "${{ body.x }}"}}}
      - method: GET
        path: /hello
        respond: {json: {ok: true}, headers: {X-Name: "${{ query.name }}"}}
    webhooks:
      - path: /github
        secret: github-secret
        events: {push: {run: {task: echo, inputs: {x: 1}}}}
      - path: /standard
        provider: standard
        secret: billing-secret
        events: {invoice.paid: {run: {task: echo, inputs: {x: "${{ body.x }}"}}}}
    websockets:
      - {path: /echo, pattern: echo}
tasks:
  echo:
    handler: tasks:echo
    inputs: {x: {type: integer}}
"""

FILES = {
    "spec.yaml": SPEC,
    "tasks.py": "def echo(x: int) -> dict:\n    return {'x': x}\n",
    "secrets/github.txt": GITHUB_SECRET,
    "web/index.html": "<h1>public</h1>",
}


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProject]:
    """The project, applied; destroyed (and every pid it had checked) at the end."""
    root = tmp_path_factory.mktemp("guarded")
    project = EngineProject(root, base_env(BILLING_SECRET=WHSEC))
    project.write(FILES)
    os.chmod(root / "secrets" / "github.txt", 0o600)
    try:
        project.ok("apply", "spec.yaml", "--timeout", "60")
        yield project
    finally:
        leftovers = project.teardown()
    if leftovers:
        pytest.fail(f"{root}: still running after destroy: pids {leftovers}")


@pytest.fixture(scope="session")
def web_url(project: EngineProject) -> str:
    """The `web` app's URL."""
    apps = {a["name"]: a for a in project.status()["apps"]}
    assert apps["web"]["state"] == "running", apps
    return str(apps["web"]["url"])


def spec_folder(tmp_path: Path, spec: str, files: dict[str, str] | None = None) -> Path:
    """A folder holding `spec` as spec.yaml (and `files`), for `engine validate`."""
    (tmp_path / "spec.yaml").write_text(spec)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / "spec.yaml"
