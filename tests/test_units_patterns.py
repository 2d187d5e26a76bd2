"""Units for issue 13's patterns: named endpoints (apps and tasks), credentials minted for
a pair of apps, and a version hash that follows the secret they derive from."""

from __future__ import annotations

import json
from pathlib import Path

from engine.backends.base import Dependency, ProjectContext, unit_environment
from engine.compiler import compile_spec
from engine.load import load_spec
from engine.plan import make_plan
from engine.runtime.credentials import mint
from engine.spec.model import Credential
from engine.units import build_units, credential_secret

SPEC = """\
version: 1
project: shop
secrets:
  backend-key: {env: BACKEND_KEY}
tasks:
  nightly:
    handler: tasks:nightly
    depends_on: [{app: backend, env: API_BASE}]
apps:
  backend:
    auth: {api_key: {header: X-Key, secret: backend-key}, apps: [frontend], tasks: [nightly]}
    routes: [{method: GET, path: /items, respond: {json: []}}]
  frontend:
    depends_on: [{app: backend, env: BACKEND_URL}]
    routes: [{method: GET, path: /items, proxy: {app: backend}}]
"""


def units(tmp_path: Path, key: str):  # type: ignore[no-untyped-def]
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "tasks.py").write_text("def nightly() -> None:\n    pass\n")
    build = compile_spec(load_spec(tmp_path / "spec.yaml", environ={}))
    secrets = {"backend-key": key}
    plan = make_plan(build, secrets, {}, {})
    return plan, build_units(build, secrets, plan)


def test_named_endpoints_reach_apps_and_tasks_under_their_variable(tmp_path: Path) -> None:
    _, made = units(tmp_path, "k1")
    frontend, nightly = made.apps["frontend"], made.tasks["nightly"]
    assert frontend.depends_on == (Dependency("backend", "BACKEND_URL"),)
    assert nightly.depends_on == (Dependency("backend", "API_BASE"),)
    context = ProjectContext("shop", tmp_path, "http://127.0.0.1:9", "token")
    env = unit_environment(context, nightly, {"backend": "http://127.0.0.1:7"})
    assert env["API_BASE"] == "http://127.0.0.1:7"
    assert "BACKEND_ENDPOINT" not in env


def test_the_caller_gets_its_credential_as_a_secret_and_nothing_else_does(
    tmp_path: Path,
) -> None:
    _, made = units(tmp_path, "k1")
    frontend, backend = made.apps["frontend"], made.apps["backend"]
    minted = mint("k1", "shop", "backend", "frontend")
    assert frontend.secrets == {"credential.frontend.backend": minted}
    assert [(g.secret, g.variable) for g in frontend.grants] == [
        ("credential.frontend.backend", "ENGINE_CREDENTIAL_BACKEND")
    ]
    assert '"header": "X-Key"' in frontend.env["ENGINE_CREDENTIALS"]
    assert minted not in repr(frontend) + repr(backend) + str(frontend.env)
    assert "credential.frontend.backend" not in backend.secrets


def test_rotating_the_callees_secret_makes_new_versions_of_both(tmp_path: Path) -> None:
    old, _ = units(tmp_path, "k1")
    new, _ = units(tmp_path, "k2")
    for name in ("backend", "frontend"):
        assert old.desired_hash("app", name) != new.desired_hash("app", name)
    assert old.desired_hash("task", "nightly") != new.desired_hash("task", "nightly")


def test_a_listed_task_gets_its_credential_as_a_secret_like_an_app(tmp_path: Path) -> None:
    _, made = units(tmp_path, "k1")
    nightly = made.tasks["nightly"]
    minted = mint("k1", "shop", "backend", "nightly", "task")
    assert nightly.secrets == {"credential.task.nightly.backend": minted}
    assert [(g.secret, g.variable) for g in nightly.grants] == [
        ("credential.task.nightly.backend", "ENGINE_CREDENTIAL_BACKEND")
    ]
    where = json.loads(nightly.env["ENGINE_CREDENTIALS"])
    assert where == {
        "backend": {"kind": "api_key", "header": "X-Key", "env": "ENGINE_CREDENTIAL_BACKEND"}
    }
    assert minted not in repr(nightly.env) + repr(made.apps["frontend"])
    assert minted != made.apps["frontend"].secrets["credential.frontend.backend"]


def test_a_long_task_credentials_name_is_a_digest_that_differs_from_an_apps() -> None:
    credential = Credential("b" * 40, "key", "bearer", "Authorization", "V")
    as_task = credential_secret("c" * 20, credential, "task")
    as_app = credential_secret("c" * 20, credential)
    assert as_task.startswith("credential.") and len(as_task) <= 63
    assert as_task != as_app
