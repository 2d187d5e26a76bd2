"""What the engine started can be found and stopped even when its state cannot tell.

Every process the local backend starts carries the project's marker in its environment
(`ENGINE_PROCESS_MARKER`), inherited by its children, setsid or not.
"""

from __future__ import annotations

import shutil
import time

import pytest

from engine.backends import local
from engine.layout import Layout
from tests.e2e.conftest import ProjectFactory, wait_for

pytestmark = pytest.mark.e2e

SPEC = """\
version: 1
project: orphans
tasks:
  escape:
    handler: tasks:escape
apps:
  api:
    routes: [{method: GET, path: /, respond: {json: ok}}]
"""
TASKS = """\
import subprocess


def escape():
    child = subprocess.Popen(["setsid", "sleep", "300"])
    return {"pid": child.pid}
"""


def test_a_deleted_engine_folder_is_refused_then_destroyed(engine_project: ProjectFactory) -> None:
    project = engine_project({"spec.yaml": SPEC, "tasks.py": TASKS})
    project.ok("apply", "spec.yaml")
    layout = Layout(project.root)
    running = {pid: local.start_time(pid) for pid in local.find_marked(layout)}
    assert len(running) >= 3  # the control plane, the app, the task's workers
    shutil.rmtree(project.root / ".engine")

    again = project.run("apply", "spec.yaml")
    assert again.returncode == 1, str(again)
    assert "still run but its state does not know them" in again.stderr
    assert "engine destroy" in again.stderr

    result = project.ok("destroy", "spec.yaml")
    assert "found by the project's marker" in result.stdout
    assert wait_for(lambda: not local.find_marked(layout), timeout=15)
    assert [pid for pid, started in running.items() if local.is_alive(pid, started)] == []


def test_destroy_ends_a_task_child_that_left_its_group(engine_project: ProjectFactory) -> None:
    project = engine_project({"spec.yaml": SPEC, "tasks.py": TASKS})
    project.ok("apply", "spec.yaml")
    outputs = project.ok("run", "escape", "--wait").json()
    child = outputs["pid"]
    started = local.start_time(child)
    assert local.is_alive(child, started)
    project.ok("destroy", "spec.yaml")
    deadline = time.monotonic() + 15
    while local.is_alive(child, started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not local.is_alive(child, started)


def test_the_run_history_stays_after_destroy(engine_project: ProjectFactory) -> None:
    tasks = TASKS + "\n\ndef hello():\n    print('hello from the run')\n    return {'ok': True}\n"
    spec = SPEC.replace("tasks:\n", "tasks:\n  hello:\n    handler: tasks:hello\n")
    project = engine_project({"spec.yaml": spec, "tasks.py": tasks})
    project.ok("apply", "spec.yaml")
    project.ok("run", "hello", "--wait")
    run_id = project.ok("runs", "--json").json()[0]["id"]
    project.ok("destroy", "spec.yaml")
    after = project.ok("runs", "--json").json()
    assert [(r["id"], r["status"], r["outputs"]) for r in after] == [
        (run_id, "succeeded", {"ok": True})
    ]
    assert "hello from the run" in project.ok("run-logs", run_id).stdout
    assert "no run 'nope'" in project.run("run-logs", "nope").stderr
    assert not (project.engine_dir / "control-plane.json").exists()  # nothing was started
