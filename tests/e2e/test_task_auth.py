"""End to end on the local backend: a task listed in an app's `auth.tasks` calls it with
the credential the engine minted for the pair, through `engine.runtime.client`; a task not
listed gets 401 from the same call; listing it re-plans only what must change, and the
credential is in no file of `.engine/`, no CLI output and no API answer."""

from __future__ import annotations

import json

import httpx
import pytest

from engine.runtime.credentials import mint
from tests.e2e.conftest import EngineProject, ProjectFactory

pytestmark = pytest.mark.e2e

TOKEN = "app-token-51c7e0"  # the app's own token (the secret `token`)

SPEC = """\
version: 1
project: e2e-task-auth
secrets:
  token: {{env: E2E_APP_TOKEN}}
apps:
  app:
    auth: {{bearer: token, tasks: [{callers}]}}
    routes: [{{method: GET, path: /whoami, handler: "handlers:whoami"}}]
tasks:
  caller: {{handler: "tasks:call", depends_on: [app]}}
  stranger: {{handler: "tasks:call", depends_on: [app]}}
"""

HANDLERS = """\
def whoami() -> dict[str, str]:
    return {"answer": "hello, authenticated caller"}
"""

TASKS = '''\
import engine.runtime


async def call() -> dict[str, object]:
    """GET /whoami of `app` with whatever credentials the engine gave this task."""
    async with engine.runtime.client("app") as app:
        response = await app.get("/whoami")
    return {"status": response.status_code, "body": response.json()}
'''


def _run(project: EngineProject, task: str) -> dict[str, object]:
    result = project.run("run", task, "--wait")
    assert result.returncode == 0, str(result)
    outputs: dict[str, object] = json.loads(result.stdout)
    return outputs


def _api(project: EngineProject, path: str) -> str:
    info = project.control_plane()
    assert info is not None
    response = httpx.get(
        info["url"] + path,
        headers={"Authorization": f"Bearer {info['token']}"},
        timeout=10,
        trust_env=False,
    )
    response.raise_for_status()
    return response.text


def test_a_listed_task_calls_the_app_and_an_unlisted_one_gets_401(
    engine_project: ProjectFactory,
) -> None:
    files = {"spec.yaml": SPEC.format(callers="caller"), "handlers.py": HANDLERS}
    project = engine_project({**files, "tasks.py": TASKS}, env={"E2E_APP_TOKEN": TOKEN})
    project.ok("apply", "spec.yaml")

    assert _run(project, "caller") == {
        "status": 200,
        "body": {"answer": "hello, authenticated caller"},
    }
    assert _run(project, "stranger") == {"status": 401, "body": {"detail": "Not authenticated"}}

    # Listing the second task: the app accepts a new caller (its module changes), the
    # listed task gets the credential (a new version, so fresh workers), the other stays.
    project.write({"spec.yaml": SPEC.format(callers="caller, stranger")})
    plan = project.ok("plan", "spec.yaml").stdout
    assert "stranger" in plan and "credential for app added" in plan, plan
    steps = {s["name"]: s for s in project.ok("plan", "spec.yaml", "--json").json()["steps"]}
    assert steps["app"]["action"] == "replace", steps["app"]
    assert steps["stranger"]["action"] == "update", steps["stranger"]
    assert steps["stranger"]["reasons"] == ["credential for app added"]
    assert steps["caller"]["action"] == "unchanged", steps["caller"]
    project.ok("apply", "spec.yaml")
    assert _run(project, "stranger")["status"] == 200
    assert _run(project, "caller")["status"] == 200

    minted = [mint(TOKEN, "e2e-task-auth", "app", t, "task") for t in ("caller", "stranger")]
    secrets = [TOKEN, *minted]
    for path in project.engine_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path
    outputs = [project.ok(*args).output for args in (["status"], ["plan", "spec.yaml"])]
    outputs += [project.ok("runs", "--json").output, _api(project, "/api/v1/status")]
    outputs += [_api(project, "/api/v1/runs")]
    for text in outputs:
        assert not [s for s in secrets if s in text], text
