"""Every example's tasks, run on a target whose run store is PostgreSQL.

Each example with tasks is copied out of the repository, given a target `pg` (the local
backend, `run_store:` a fresh database of the session's PostgreSQL server, its password
through a secret) and applied with `engine apply --target pg`. Every task is then started
with `engine run --wait`, and the webhook examples are sent one signed delivery twice.
The runs are read back from the database itself: each ended as expected, a delivery
started one run, and no SQLite run store was made. One example is applied at a time.
"""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.e2e.conftest import EngineProject, base_env
from tests.e2e.helpers import (
    EXAMPLES,
    HEALTH_TIMEOUT,
    app_urls,
    client,
    github_headers,
    github_payload,
    new_whsec,
    standard_headers,
)
from tests.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.e2e

TARGET = "pg"
PASSWORD_SECRET = "run-store-password"
PASSWORD_VARIABLE = "RUN_STORE_PASSWORD"
GITHUB_SECRET, BILLING_SECRET = secrets.token_urlsafe(16), new_whsec()
SECRETS = {  # every example's secrets, whichever it needs
    "CATALOG_TOKEN": secrets.token_urlsafe(16),
    "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
    "BILLING_WEBHOOK_SECRET": BILLING_SECRET,
    "WEBHOOK_API_KEY": secrets.token_urlsafe(16),
}

# Example -> task -> (inputs, how the run ends, its outputs). A task added to an example
# without a line here fails test_every_task_of_every_example_is_listed.
RUNS: dict[str, dict[str, tuple[dict[str, Any], str, Any]]] = {
    "gateway": {
        "restock": ({"item": "tea", "quantity": 3}, "succeeded", {"item": "tea", "quantity": 3}),
    },
    "github-webhook": {
        "deploy": (
            {"commit": "abc1234", "ref": "refs/heads/main", "delivery": "by-hand"},
            "succeeded",
            {"deployed": "abc1234", "branch": "main", "delivery": "by-hand"},
        ),
    },
    "standard-webhooks": {
        "record-payment": (
            {"invoice": "in_1", "amount": 250, "event_id": "by-hand"},
            "succeeded",
            {"invoice": "in_1", "amount": 250, "event_id": "by-hand", "recorded": True},
        ),
    },
    "task-calls-app": {"add-one": ({"x": 41}, "succeeded", {"result": 42})},
    "webhook-runner": {
        "greet": ({"name": "pg"}, "succeeded", {"greeting": "Hello, pg!"}),
        "slow-sum": ({"numbers": [1, 2.5], "delay": 0}, "succeeded", {"sum": 3.5}),
        "fail": ({"reason": "on purpose"}, "failed", None),
        "process-order": (
            {"item": "pen", "quantity": 2},
            "succeeded",
            {"item": "pen", "quantity": 2, "status": "accepted"},
        ),
    },
    "websockets": {
        "countdown": ({"start": 1}, "succeeded", {"counted_from": 1, "message": "liftoff"}),
    },
}


def example_tasks() -> dict[str, set[str]]:
    """Example name -> the names of its tasks, for every example that has tasks."""
    found = {}
    for spec in sorted(EXAMPLES.glob("*/spec.yaml")):
        tasks = yaml.safe_load(spec.read_text()).get("tasks") or {}
        if tasks:
            found[spec.parent.name] = set(tasks)
    return found


def test_every_task_of_every_example_is_listed() -> None:
    assert {name: set(tasks) for name, tasks in RUNS.items()} == example_tasks()


@dataclass
class TargetProject(EngineProject):
    """An EngineProject whose commands act on target `pg` (its state in .engine/targets/pg)."""

    @property
    def engine_dir(self) -> Path:
        return self.root / ".engine" / "targets" / TARGET


@dataclass(frozen=True)
class Applied:
    project: TargetProject
    url: str  # the run store's database, without the password


def with_postgres_target(spec: Path, url: str) -> None:
    """Give the spec a target `pg` whose runs live at `url`, its password from a secret."""
    doc = yaml.safe_load(spec.read_text())
    doc.setdefault("secrets", {})[PASSWORD_SECRET] = {"env": PASSWORD_VARIABLE}
    doc.setdefault("targets", {})[TARGET] = {
        "backend": "local",
        "run_store": url,
        "run_store_password": PASSWORD_SECRET,
    }
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(params=sorted(RUNS))
def applied(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[Applied]:
    """The example, applied on target `pg` over a fresh database; destroyed after."""
    url = postgres.new_database()
    env = base_env(**SECRETS, **{PASSWORD_VARIABLE: PASSWORD, "ENGINE_TARGET": TARGET})
    project = TargetProject(tmp_path / request.param, env)
    ignore = shutil.ignore_patterns("__pycache__", ".engine")
    shutil.copytree(EXAMPLES / request.param, project.root, ignore=ignore)
    with_postgres_target(project.root / "spec.yaml", url)
    try:
        project.ok("apply", "spec.yaml", "--target", TARGET, "--timeout", HEALTH_TIMEOUT)
        yield Applied(project, url)
    finally:
        leftovers = project.teardown()
    assert not leftovers, f"still running after destroy: pids {leftovers}"


def stored_runs(url: str) -> list[dict[str, Any]]:
    """Every run in the database, oldest first."""
    with psycopg.connect(url, password=PASSWORD) as conn:
        cursor = conn.execute(
            "SELECT id, task, status, inputs, outputs, error FROM runs ORDER BY seq"
        )
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_every_task_runs_with_a_postgresql_run_store(applied: Applied) -> None:
    project, example = applied.project, applied.project.root.name
    for task, (inputs, status, outputs) in RUNS[example].items():
        (project.root / "inputs.json").write_text(json.dumps(inputs))
        result = project.run("run", task, "--input-file", "inputs.json", "--wait")
        assert (result.returncode == 0) == (status == "succeeded"), str(result)
        if outputs is not None:
            assert result.json() == outputs, str(result)

    runs = stored_runs(applied.url)
    assert [(r["task"], r["status"], r["outputs"]) for r in runs] == [
        (task, status, outputs) for task, (_, status, outputs) in RUNS[example].items()
    ]
    assert all(r["inputs"].items() >= RUNS[example][r["task"]][0].items() for r in runs)
    deliver_twice = DELIVERIES.get(example)
    if deliver_twice is not None:
        delivered = deliver_twice(app_urls(project))
        project.wait_for(lambda: _finished(applied.url, delivered), timeout=30)
        runs = [r for r in stored_runs(applied.url) if _from(r, delivered)]
        assert [r["status"] for r in runs] == ["succeeded"], runs  # one run for two deliveries
    assert not list(project.root.joinpath(".engine").rglob("runs.db"))


def _from(run: dict[str, Any], delivery: str) -> bool:
    return delivery in (run["inputs"].get("delivery"), run["inputs"].get("event_id"))


def _finished(url: str, delivery: str) -> bool:
    runs = [r for r in stored_runs(url) if _from(r, delivery)]
    return bool(runs) and all(r["status"] not in ("queued", "running") for r in runs)


def _github_push_twice(urls: dict[str, str]) -> str:
    delivery, body = str(uuid.uuid4()), github_payload("push.default.json")
    headers = github_headers(GITHUB_SECRET, "push", body, delivery)
    with client(urls["receiver"]) as http:
        answers = [http.post("/github-webhook", content=body, headers=headers) for _ in "12"]
    assert [a.status_code for a in answers] in ([202, 202], [202, 200]), answers
    return delivery


def _invoice_paid_twice(urls: dict[str, str]) -> str:
    message = f"msg_{uuid.uuid4().hex}"
    event = {"type": "invoice.paid", "data": {"id": "in_9", "amount": 990}}
    body = json.dumps(event).encode()
    with client(urls["billing"]) as http:
        answers = [
            http.post(
                "/webhooks/billing", content=body,
                headers=standard_headers(BILLING_SECRET, body, msg_id=message),
            )
            for _ in "12"
        ]  # fmt: skip
    assert [a.status_code for a in answers] in ([202, 202], [202, 200]), answers
    return message


DELIVERIES = {"github-webhook": _github_push_twice, "standard-webhooks": _invoice_paid_twice}
"""Examples whose webhooks start runs: send one delivery twice, return its id."""
