"""A target whose runs live in PostgreSQL: `engine apply` and `engine run` through it, the
password given by a secret and never written anywhere engine keeps."""

from __future__ import annotations

import psycopg
import pytest

from tests.e2e.conftest import ProjectFactory
from tests.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.e2e

SPEC = """\
version: 1
project: shared-runs
secrets:
  pg-password: {{env: SHARED_RUNS_PG_PASSWORD}}
targets:
  local:
    backend: local
    run_store: "{url}"
    run_store_password: pg-password
tasks:
  add-one:
    handler: tasks:add_one
    inputs: {{x: {{type: integer}}}}
apps:
  api:
    routes: [{{method: POST, path: /add, run: {{task: add-one, wait: 30}}}}]
"""
TASKS = "def add_one(x):\n    return {'y': x + 1}\n"


def test_runs_are_stored_in_postgresql(
    engine_project: ProjectFactory, postgres: PostgresServer
) -> None:
    url = postgres.new_database()
    project = engine_project({"spec.yaml": SPEC.format(url=url), "tasks.py": TASKS})
    env = {**project.env, "SHARED_RUNS_PG_PASSWORD": PASSWORD}
    project.ok("apply", "spec.yaml", env=env)
    assert project.ok("run", "add-one", "-i", "x=41", "--wait").json() == {"y": 42}
    with psycopg.connect(url, password=PASSWORD) as conn:
        rows = conn.execute("SELECT task, status FROM runs").fetchall()
    assert rows == [("add-one", "succeeded")]
    assert not (project.engine_dir / "runs.db").exists()
    for path in project.engine_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
