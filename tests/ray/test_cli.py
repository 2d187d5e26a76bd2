"""`engine apply --target ray-dev` through the CLI, for every example Ray can run.

The examples carry no Ray target (their cluster address is the reader's), so each test
applies a copy with one added that points at the session's head, checks every app's
health route through the Serve proxy, then destroys the project.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.ray.conftest import EXAMPLES, REPO, copy_project, needs_ray
from tests.ray.head import Head

pytestmark = [pytest.mark.ray, needs_ray, pytest.mark.timeout(180)]

EXAMPLE_SECRETS = {
    "GITHUB_WEBHOOK_SECRET": "github-example-secret",
    "BILLING_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"billing-example-secret").decode(),
    "WEBHOOK_API_KEY": "runner-example-key",
    "CATALOG_TOKEN": "catalog-example-token",
    "BACKEND_TOKEN": "task-auth-backend-token",  # tests/fixtures/task_auth
}
RAY_EXAMPLES = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "browser")


def with_ray_target(spec: Path, head: Head) -> None:
    """Add the `ray-dev` target (and its token secret) to a copied spec."""
    doc = yaml.safe_load(spec.read_text())
    doc.setdefault("secrets", {})["ray-token"] = {"env": "RAY_TEST_TOKEN"}
    doc["targets"] = {
        "ray-dev": {
            "backend": "ray",
            "address": head.address,
            "token": "ray-token",
            "serve_port": head.serve_port,
        }
    }
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))


def bearer(head: Head) -> dict[str, str]:
    return {"Authorization": f"Bearer {head.token}"}


def engine(folder: Path, head: Head, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **EXAMPLE_SECRETS, "RAY_TEST_TOKEN": head.token}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "engine.cli", *args, "--target", "ray-dev"]
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=150)


@pytest.mark.parametrize("example", RAY_EXAMPLES)
def test_apply_runs_the_example_on_ray_and_destroy_removes_it(
    head: Head, tmp_path: Path, example: str
) -> None:
    spec = copy_project(EXAMPLES / example, tmp_path / "work")  # not named as the project
    with_ray_target(spec, head)
    doc = yaml.safe_load(spec.read_text())
    apps = sorted(doc["apps"])
    try:
        applied = engine(spec.parent, head, "apply", "spec.yaml")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        serve = httpx.get(f"{head.address}/api/serve/applications/", headers=bearer(head))
        assert sorted(serve.json()["applications"]) == [f"{doc['project']}.{a}" for a in apps]
        for app in apps:
            url = f"http://127.0.0.1:{head.serve_port}/{app}/health"
            assert httpx.get(url, timeout=10).status_code == 200, app
            shown = rf"\b{app}\s+running\s+http://127\.0\.0\.1:{head.serve_port}/{app}\s"
            assert re.search(shown, applied.stdout), applied.stdout
        if example == "task-calls-app":  # a run goes to the cluster as a Ray job
            ran = engine(spec.parent, head, "run", "add-one", "-i", "x=41", "--wait")
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert json.loads(ran.stdout) == {"result": 42}
            runs = json.loads(engine(spec.parent, head, "runs", "--json").stdout)
            run_id = runs[0]["id"]
            log = engine(spec.parent, head, "run-logs", run_id)
            assert "engine.backends.ray.job_entry tasks:add_one_task" in log.stdout, log
    finally:
        destroyed = engine(spec.parent, head, "destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    for app in apps:
        url = f"http://127.0.0.1:{head.serve_port}/{app}/health"
        assert httpx.get(url, timeout=10).status_code == 404, app


def console_rows(console: httpx.Client) -> str:
    """The app rows of the console's project page, as its live updates send them."""
    response = console.get("/project.json")
    assert response.status_code == 200, response.text
    return str(response.json()["html"]["app-rows"])


def test_the_console_shows_the_clusters_apps_and_sees_one_go_without_engine_status(
    head: Head, tmp_path: Path
) -> None:
    spec = copy_project(EXAMPLES / "quickstart", tmp_path / "work")
    with_ray_target(spec, head)
    (app,) = yaml.safe_load(spec.read_text())["apps"]
    try:
        applied = engine(spec.parent, head, "apply", "spec.yaml")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        link = re.search(r"(http://127\.0\.0\.1:\d+)(/login\?code=\S+)", applied.stdout)
        assert link, applied.stdout
        with httpx.Client(base_url=link.group(1), trust_env=False, timeout=30) as console:
            assert console.get(link.group(2), follow_redirects=True).status_code == 200
            assert re.search(rf'data-app="{app}".*?>running<', console_rows(console), re.S)
            page = console.get(f"/apps/{app}")
            assert page.status_code == 200
            assert f"http://127.0.0.1:{head.serve_port}/{app}" in page.text
            # Gone from the cluster behind the engine's back: the console, which polls,
            # must stop listing it by itself (it asks the cluster again every few seconds).
            gone = httpx.delete(f"{head.address}/api/serve/applications/", headers=bearer(head))
            assert gone.status_code == 200, gone.text
            for _ in range(120):
                if f'data-app="{app}"' not in console_rows(console):
                    break
                time.sleep(0.5)
            assert f'data-app="{app}"' not in console_rows(console)
    finally:
        destroyed = engine(spec.parent, head, "destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr


def test_a_ray_job_calls_an_authenticated_serve_app_with_its_minted_credential(
    head: Head, tmp_path: Path
) -> None:
    spec = copy_project(REPO / "tests" / "fixtures" / "task_auth", tmp_path / "work")
    with_ray_target(spec, head)
    try:
        applied = engine(spec.parent, head, "apply", "spec.yaml")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        orders = f"http://127.0.0.1:{head.serve_port}/backend/orders"
        assert httpx.get(orders, timeout=10).status_code == 401  # no credential, no orders
        ran = engine(spec.parent, head, "run", "nightly-report", "--wait")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert json.loads(ran.stdout) == {"count": 3}
    finally:
        destroyed = engine(spec.parent, head, "destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
