"""End to end: the real `engine` CLI, a real control plane, real app processes and ports.

Most tests share one applied project (`shop`) and run in file order: each leaves it in a
state the next one expects, and the last one destroys it. Polling goes through the control
plane's API (cheap); every assertion about behaviour goes through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from engine.backends.local import procs

if TYPE_CHECKING:  # conftest cannot be imported at run time: tests/ has several
    from tests.e2e.conftest import EngineProject, ProjectFactory

pytestmark = pytest.mark.e2e

HEALTH_TIMEOUT = "30"  # the apps start in ~2 s; generous, because CI machines can be slow
SECRET = f"s3cr3t-{uuid.uuid4().hex}"

SPEC = """
version: 1
project: e2e-shop
secrets:
  token: {env: E2E_TOKEN}
apps:
  backend:
    routes:
      - {method: GET, path: /hello, handler: "backend:hello"}
      - {method: GET, path: /secret, handler: "backend:secret_seen"}
  frontend:
    depends_on: [backend]
    secrets: [token]
    routes:
      - {method: GET, path: /api/hello, proxy: {app: backend, path: /hello}}
      - {method: GET, path: /whoami, handler: "frontend:whoami"}
      - {method: GET, path: /call, handler: "frontend:call"}
      - {method: GET, path: /secret, handler: "frontend:secret_seen"}
  other:
    secrets: [{name: token, file: true}]
    routes:
      - {method: GET, path: /ping, handler: "other:ping"}
      - {method: GET, path: /secret, handler: "other:secret_seen"}
"""

SECRET_SEEN = '''

def secret_seen():
    """Whether TOKEN is in the environment or in TOKEN_FILE; a hash, never the value."""
    import hashlib

    path = os.environ.get("TOKEN_FILE")
    value = os.environ.get("TOKEN")
    if value is None and path:
        with open(path) as f:
            value = f.read()
    digest = hashlib.sha256(value.encode()).hexdigest() if value is not None else None
    return {"env": "TOKEN" in os.environ, "file": path, "sha256": digest}
'''

BACKEND = (
    """
import os


def hello():
    return {"app": "backend", "pid": os.getpid()}
"""
    + SECRET_SEEN
)

FRONTEND = (
    """
import os

import httpx

from engine.runtime import endpoint


def whoami():
    return {"app": "frontend", "backend": endpoint("backend")}


def call():
    return httpx.get(endpoint("backend") + "/hello", timeout=10).json()
"""
    + SECRET_SEEN
)

OTHER = (
    """
import os


def ping():
    return {"app": "other", "pid": os.getpid()}
"""
    + SECRET_SEEN
)

FILES = {"spec.yaml": SPEC, "backend.py": BACKEND, "frontend.py": FRONTEND, "other.py": OTHER}


@pytest.fixture(scope="module")
def shop(shared_engine_project: ProjectFactory) -> EngineProject:
    """The shared project, written and not yet applied (the first test applies it)."""
    return shared_engine_project(FILES, env={"E2E_TOKEN": SECRET})


def apps(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in status["apps"]}


def pids(project: EngineProject) -> dict[str, int]:
    return {name: a["pid"] for name, a in apps(project.api_status()).items()}


def get(url: str) -> Any:
    response = httpx.get(url, timeout=10, trust_env=False)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()


def apply(project: EngineProject, *args: str) -> Any:
    return project.run("apply", *args, "--timeout", HEALTH_TIMEOUT)


# the shared project, in order


def test_apply_starts_apps_in_dependency_order_and_injects_endpoints(shop: EngineProject) -> None:
    result = apply(shop, "spec.yaml")
    assert result.returncode == 0, str(result)
    out = result.stdout
    assert out.index("app backend: running") < out.index("app frontend: starting"), out
    assert "Apply complete." in out

    status = shop.status()
    assert status["project"] == "e2e-shop"
    assert status["control_plane"]["pid"] == shop.control_plane()["pid"]
    by_name = apps(status)
    assert set(by_name) == {"backend", "frontend", "other"}
    for app in by_name.values():
        assert app["state"] == "running", app
        assert app["url"] == f"http://127.0.0.1:{app['port']}"
        assert procs.process_start_time(app["pid"]) is not None, f"{app['name']} is not alive"
    backend, frontend = by_name["backend"]["url"], by_name["frontend"]["url"]

    assert get(f"{backend}/hello") == {"app": "backend", "pid": by_name["backend"]["pid"]}
    assert get(f"{frontend}/api/hello")["app"] == "backend"  # the proxy route
    assert get(f"{frontend}/whoami")["backend"] == backend  # engine.runtime.endpoint()
    assert get(f"{frontend}/call")["pid"] == by_name["backend"]["pid"]  # app to app
    assert get(f"{by_name['other']['url']}/ping")["app"] == "other"


def test_reapply_of_the_same_spec_changes_nothing(shop: EngineProject) -> None:
    before = pids(shop)
    result = apply(shop, "spec.yaml")
    assert result.returncode == 0, str(result)
    assert "No changes." in result.stdout
    assert "starting" not in result.stdout
    assert pids(shop) == before


def test_plan_detailed_exitcode_and_json(shop: EngineProject) -> None:
    assert shop.run("plan", "--detailed-exitcode").returncode == 0
    plan = shop.ok("plan", "--json").json()
    assert plan["project"] == "e2e-shop"
    assert Path(plan["spec_path"]) == shop.root / "spec.yaml"
    assert re.fullmatch(r"[0-9a-f]{64}", plan["spec_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", plan["state_token"])
    steps = {s["name"]: s for s in plan["steps"]}
    assert set(steps) == {"backend", "frontend", "other"}
    for step in plan["steps"]:
        assert set(step) >= {"action", "kind", "name", "hash", "reasons", "depends_on", "level"}
        assert (step["kind"], step["action"]) == ("app", "unchanged")
    assert steps["frontend"]["depends_on"] == ["backend"]
    assert steps["frontend"]["level"] > steps["backend"]["level"]

    shop.append("other.py", "\n# version 2\n")
    changed = shop.run("plan", "--detailed-exitcode")
    assert changed.returncode == 2, str(changed)
    rows = [line for line in changed.stdout.splitlines() if re.match(r"\s+\S+ app ", line)]
    assert len(rows) == 1 and re.search(r"app other\s+replace", rows[0]), changed.stdout


def test_saved_plan_applies_and_restarts_only_the_changed_app(shop: EngineProject) -> None:
    before = apps(shop.api_status())
    saved = shop.run("plan", "-o", "plan.json", "--detailed-exitcode")
    assert saved.returncode == 2, str(saved)
    assert "engine apply plan.json" in saved.stdout
    result = apply(shop, "plan.json")
    assert result.returncode == 0, str(result)
    after = apps(shop.api_status())
    assert after["other"]["pid"] != before["other"]["pid"]
    assert after["other"]["url"] == before["other"]["url"]  # the same socket, a new process
    assert get(f"{after['other']['url']}/ping")["pid"] == after["other"]["pid"]
    for name in ("backend", "frontend"):
        assert after[name]["pid"] == before[name]["pid"], name
    assert not procs.is_ours(before["other"]["pid"], shop.seen_pids[before["other"]["pid"]])


def test_changing_a_handler_restarts_only_its_app(shop: EngineProject) -> None:
    before = apps(shop.api_status())
    shop.ok("plan", "-o", "stale.json")  # made stale by this apply; see the next test
    shop.append("backend.py", "\n# version 2\n")
    result = apply(shop, "spec.yaml")
    assert result.returncode == 0, str(result)
    assert re.search(r"app backend\s+replace\s+\(backend.py changed\)", result.stdout)
    assert "app frontend" not in result.stdout.split("Plan:")[0]
    after = apps(shop.api_status())
    assert after["backend"]["pid"] != before["backend"]["pid"]
    assert after["backend"]["url"] == before["backend"]["url"]
    assert after["frontend"]["pid"] == before["frontend"]["pid"]
    assert after["other"]["pid"] == before["other"]["pid"]
    # The frontend reaches the new backend at the address it was given.
    assert get(f"{after['frontend']['url']}/whoami")["backend"] == after["backend"]["url"]
    assert get(f"{after['frontend']['url']}/call")["pid"] == after["backend"]["pid"]


def test_a_stale_saved_plan_is_refused(shop: EngineProject) -> None:
    # stale.json was saved before the previous test applied a change.
    before = pids(shop)
    result = apply(shop, "stale.json")
    assert result.returncode == 1, str(result)
    assert "saved plan is stale" in result.stderr
    assert "engine plan -o" in result.stderr
    assert "Traceback" not in result.output
    assert pids(shop) == before


def test_a_saved_plan_is_refused_after_a_handler_edit(shop: EngineProject) -> None:
    # The spec and the state are unchanged; only code the plan did not see differs.
    shop.ok("plan", "-o", "fresh.json")
    before = pids(shop)
    shop.append("backend.py", "\n# edited after planning\n")
    result = apply(shop, "fresh.json")
    assert result.returncode == 1, str(result)
    assert "saved plan is stale" in result.stderr
    assert pids(shop) == before
    assert apply(shop, "spec.yaml").returncode == 0  # converge again for the tests that follow


def test_a_broken_update_keeps_the_old_version_serving(shop: EngineProject) -> None:
    before = apps(shop.api_status())
    good = (shop.root / "backend.py").read_text()
    shop.append("backend.py", "\nraise RuntimeError('boom-e2e at import')\n")
    try:
        result = apply(shop, "spec.yaml")
    finally:
        (shop.root / "backend.py").write_text(good)
    assert result.returncode != 0, str(result)
    assert "app 'backend' exited before it was healthy" in result.stderr
    assert "RuntimeError: boom-e2e at import" in result.stderr  # the end of its log
    assert "app frontend" not in result.stdout.split("Plan:")[0]  # its address stays
    assert "Apply failed" in result.stdout
    assert "Traceback (most recent call last)" not in result.stdout
    # The old versions still serve, at their old URLs.
    after = apps(shop.api_status())
    assert {n: (a["pid"], a["url"], a["state"]) for n, a in after.items()} == {
        n: (a["pid"], a["url"], a["state"]) for n, a in before.items()
    }
    assert get(f"{before['backend']['url']}/hello")["pid"] == before["backend"]["pid"]
    assert get(f"{before['frontend']['url']}/call")["pid"] == before["backend"]["pid"]
    # The state still holds the old version: with the file restored, nothing is to do.
    assert shop.run("plan", "--detailed-exitcode").returncode == 0


def test_secrets_reach_only_the_apps_granted_them(shop: EngineProject) -> None:
    by_name = apps(shop.api_status())
    digest = hashlib.sha256(SECRET.encode()).hexdigest()

    frontend = get(f"{by_name['frontend']['url']}/secret")  # granted via env
    assert frontend == {"env": True, "file": None, "sha256": digest}

    other = get(f"{by_name['other']['url']}/secret")  # granted as a file
    assert other["env"] is False
    assert other["sha256"] == digest
    secret_file = Path(other["file"])
    assert shop.engine_dir not in secret_file.parents
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    backend = get(f"{by_name['backend']['url']}/secret")  # not granted
    assert backend == {"env": False, "file": None, "sha256": None}

    needle = SECRET.encode()
    leaks = [p for p in shop.engine_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert leaks == [], f"the secret's value is written in {leaks}"
    assert shop.results, "no CLI output to check"
    for result in shop.results:
        assert SECRET not in result.output, f"the secret's value is printed by {result.args}"


def test_logs_tail_and_unknown_app(shop: EngineProject) -> None:
    result = shop.ok("logs", "backend", "--tail", "5")
    lines = result.stdout.splitlines()
    log = (shop.engine_dir / "logs" / "backend.log").read_text().splitlines()
    assert len(log) > 5
    assert lines == log[-5:]

    unknown = shop.run("logs", "no-such-app")
    assert unknown.returncode == 1, str(unknown)
    assert "no app 'no-such-app'" in unknown.stderr
    assert "backend" in unknown.stderr  # names the apps that do have logs
    assert "Traceback" not in unknown.output


def test_a_killed_app_is_restarted_by_the_supervisor(shop: EngineProject) -> None:
    old = apps(shop.api_status())["other"]
    os.kill(old["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        app = apps(shop.api_status())["other"]
        return app if app["state"] == "running" and app["pid"] != old["pid"] else None

    new = shop.wait_for(restarted, timeout=60)
    assert new["restarts"] >= 1
    assert apps(shop.status())["other"]["restarts"] >= 1  # through the CLI too
    assert get(f"{new['url']}/ping")["pid"] == new["pid"]


def test_a_killed_control_plane_is_replaced_and_readopts_the_apps(shop: EngineProject) -> None:
    before = apps(shop.api_status())
    info = shop.control_plane()
    assert info is not None
    os.kill(info["pid"], signal.SIGKILL)
    shop.wait_for(lambda: not procs.is_ours(info["pid"], info["start_time"]), timeout=10)

    # The apps keep serving without a control plane.
    assert get(f"{before['backend']['url']}/hello")["pid"] == before["backend"]["pid"]
    assert get(f"{before['frontend']['url']}/call")["pid"] == before["backend"]["pid"]
    # An app dies while nobody watches.
    row = shop.recorded_apps()["backend"]
    assert row["pid"] == before["backend"]["pid"]
    os.kill(row["pid"], signal.SIGKILL)
    shop.wait_for(lambda: not procs.is_ours(row["pid"], row["start_time"]), timeout=10)

    status = shop.status()  # starts a new control plane, which re-adopts the apps
    assert status["control_plane"]["pid"] != info["pid"]
    after = apps(status)
    for name in ("frontend", "other"):
        assert after[name]["pid"] == before[name]["pid"], name
    assert get(f"{after['other']['url']}/ping")["pid"] == before["other"]["pid"]

    def backend_back() -> dict[str, Any] | None:
        app = apps(shop.api_status())["backend"]
        return app if app["state"] == "running" and app["pid"] != row["pid"] else None

    backend = shop.wait_for(backend_back, timeout=60)
    assert backend["restarts"] >= 1
    assert backend["url"] == before["backend"]["url"]  # back on its port: endpoints hold
    assert get(f"{backend['url']}/hello")["pid"] == backend["pid"]
    assert get(f"{before['frontend']['url']}/call")["pid"] == backend["pid"]


def test_concurrent_applies_one_fails_on_the_lock_or_waits(shop: EngineProject) -> None:
    # A slow change: the new `other` takes a few seconds to import.
    shop.append("other.py", "\nimport time\n\ntime.sleep(3)\n")
    args = ("apply", "spec.yaml", "--timeout", HEALTH_TIMEOUT)
    first = shop.popen(*args)
    lock = shop.engine_dir / "lock"

    def held_by_first() -> bool:
        text = lock.read_text() if lock.exists() else ""
        return bool(text) and json.loads(text).get("pid") == first.pid

    shop.wait_for(held_by_first, timeout=30, interval=0.05)
    waiting = shop.popen(*args, "--wait-lock")
    refused = shop.run(*args)
    assert refused.returncode == 1, str(refused)
    assert f"is held by pid {first.pid} (engine apply" in refused.stderr
    assert "Traceback" not in refused.output

    first_result = shop.finish(first, args)
    assert first_result.returncode == 0, str(first_result)
    assert re.search(r"app other\s+replace", first_result.stdout)
    waited = shop.finish(waiting, (*args, "--wait-lock"))
    assert waited.returncode == 0, str(waited)
    assert "No changes." in waited.stdout  # it ran after the first one had finished


def test_destroy_leaves_no_process_and_no_port(shop: EngineProject) -> None:
    status = shop.api_status()
    secret_file = Path(get(f"{apps(status)['other']['url']}/secret")["file"])
    urls = [a["url"] for a in status["apps"]] + [status["control_plane"]["url"]]
    known = shop.known_processes()
    assert len(known) >= 4

    result = shop.ok("destroy")
    assert "no app is running" in result.stdout
    alive = [pid for pid, start in known.items() if procs.is_ours(pid, start)]
    assert alive == [], f"still running after destroy: {alive}"
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=5, trust_env=False)
    assert shop.control_plane() is None
    assert shop.recorded_apps() == {}
    assert not secret_file.exists(), "a secret granted as a file outlives destroy"
    for done in shop.results:  # every command of the module, this one included
        assert SECRET not in done.output, f"the secret's value is printed by {done.args}"


# failures before anything starts


def test_a_missing_secret_fails_apply_before_anything_starts(
    engine_project: ProjectFactory,
) -> None:
    variable = f"E2E_MISSING_{uuid.uuid4().hex[:8].upper()}"
    spec = SPEC.replace("{env: E2E_TOKEN}", f"{{env: {variable}}}")
    project = engine_project({**FILES, "spec.yaml": spec})
    assert variable not in project.env
    result = project.run("apply")
    assert result.returncode == 1, str(result)
    assert "secret 'token'" in result.stderr
    assert f"environment variable {variable} is not set" in result.stderr
    assert "Traceback" not in result.output
    assert project.control_plane() is None
    assert not (project.engine_dir / "logs").exists()


def test_an_invalid_spec_fails_apply_with_positions(engine_project: ProjectFactory) -> None:
    spec = SPEC.replace("project: e2e-shop", "project: e2e-shop\ncolour: blue").replace(
        "  other:\n", "  other:\n    replicas: many\n"
    )
    project = engine_project({**FILES, "spec.yaml": spec})
    result = project.run("apply", "spec.yaml")
    assert result.returncode == 1, str(result)
    lines = result.stderr.splitlines()
    assert lines, str(result)
    for line in lines:
        assert re.match(r"\S*spec\.yaml:\d+:\d+: ", line), line
    assert any("colour" in line for line in lines), lines
    assert any("apps.other.replicas" in line for line in lines), lines  # all at once
    assert "Traceback" not in result.output
    assert not project.engine_dir.exists()  # no control plane, no state


QUEUE_SPEC = """version: 1
project: e2e-queue
tasks:
  nap:
    handler: naps:nap
    inputs: {i: {type: integer}}
    concurrency: 1
"""
NAPS = "import time\n\ndef nap(i: int) -> dict:\n    time.sleep(0.5)\n    return {'i': i}\n"


def test_queued_runs_complete_after_the_control_plane_is_killed(
    engine_project: ProjectFactory,
) -> None:
    project = engine_project({"spec.yaml": QUEUE_SPEC, "naps.py": NAPS})
    project.ok("apply", "--timeout", HEALTH_TIMEOUT)
    info = project.control_plane()
    assert info is not None
    headers = {"Authorization": f"Bearer {info['token']}"}
    ids = [
        httpx.post(
            f"{info['url']}/api/v1/runs",
            json={"task": "nap", "inputs": {"i": i}},
            headers=headers,
            timeout=10,
            trust_env=False,
        ).json()["id"]
        for i in range(6)
    ]
    os.kill(info["pid"], signal.SIGKILL)  # one run is running, the rest are queued
    project.wait_for(lambda: not procs.is_ours(info["pid"], info["start_time"]), timeout=10)

    project.status()  # starts a new control plane, which picks the runs up again
    new = project.control_plane()
    assert new is not None and new["pid"] != info["pid"]

    def final_runs() -> list[dict[str, Any]] | None:
        runs = [
            httpx.get(f"{new['url']}/api/v1/runs/{i}", headers=headers, trust_env=False).json()
            for i in ids
        ]
        return runs if all(r["status"] not in ("queued", "running") for r in runs) else None

    runs = project.wait_for(final_runs, timeout=60)
    statuses = [r["status"] for r in runs]
    # The run in progress lost its worker (no retries configured): failed, never lost.
    assert statuses.count("succeeded") >= 5, statuses
    assert set(statuses) <= {"succeeded", "failed"}, statuses
    for run in runs:
        if run["status"] == "succeeded":
            assert run["outputs"] == run["inputs"]
        else:
            assert "worker lost" in run["error"]


SLOW_SPEC = """version: 1
project: e2e-adopt
tasks:
  slow:
    handler: slow:slow
    inputs: {marks: {type: string}}
    retries: 2
"""
SLOW = """import os, time

def slow(marks: str) -> dict:
    with open(marks, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    time.sleep(2)
    with open(marks, "a") as f:
        f.write(f"end {os.getpid()}\\n")
    return {"pid": os.getpid()}
"""


def test_a_run_in_flight_at_a_control_plane_kill_9_ends_once_with_its_outputs(
    engine_project: ProjectFactory,
) -> None:
    """Issue 12 item 2: the new control plane adopts the orphaned worker's result instead
    of failing the run or running it again beside it (it has retries left to tempt it)."""
    project = engine_project({"spec.yaml": SLOW_SPEC, "slow.py": SLOW})
    project.ok("apply", "--timeout", HEALTH_TIMEOUT)
    info = project.control_plane()
    assert info is not None
    headers = {"Authorization": f"Bearer {info['token']}"}
    marks = project.root / "marks"
    run = httpx.post(
        f"{info['url']}/api/v1/runs",
        json={"task": "slow", "inputs": {"marks": str(marks)}},
        headers=headers,
        timeout=10,
        trust_env=False,
    ).json()
    project.wait_for(marks.exists, timeout=20)  # the attempt began: its handle is stored
    os.kill(info["pid"], signal.SIGKILL)
    project.wait_for(lambda: not procs.is_ours(info["pid"], info["start_time"]), timeout=10)

    project.status()  # starts a new control plane, which reattaches the run
    new = project.control_plane()
    assert new is not None and new["pid"] != info["pid"]
    url = f"{new['url']}/api/v1/runs/{run['id']}/wait"
    done = httpx.get(url, params={"timeout": 30}, headers=headers, timeout=40, trust_env=False)
    final = done.json()
    pid = int(marks.read_text().split()[1])
    assert (final["status"], final["attempts"], final["outputs"]) == (
        "succeeded", 1, {"pid": pid},
    )  # fmt: skip
    assert marks.read_text() == f"start {pid}\nend {pid}\n"  # it ran once, never twice
