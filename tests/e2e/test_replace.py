"""Replacing an app on the local backend refuses no request and moves no address.

A client sends 20 requests a second to the app (dynamic port, and fixed port) while a
changed handler is applied; every request must answer 200, the URL stays the same, and
the app that depends on it keeps its process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import EngineProject, ProjectFactory, wait_for
from tests.runtime.conftest import free_port

pytestmark = pytest.mark.e2e

SPEC = """\
version: 1
project: steady
apps:
  backend:
    {port}
    routes: [{{method: GET, path: /v, handler: "backend:version"}}]
  frontend:
    depends_on: [backend]
    routes: [{{method: GET, path: /v, proxy: {{app: backend}}}}]
"""


def _backend(version: int) -> str:
    return f"import os\n\ndef version():\n    return {{'v': {version}, 'pid': os.getpid()}}\n"


class Poller(threading.Thread):
    """GET `url` 20 times a second on fresh connections until stopped; count the outcomes."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.versions: set[int] = set()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                response = httpx.get(self.url, timeout=5.0)
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.versions.add(response.json()["v"])
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)


@pytest.mark.parametrize("fixed", [False, True], ids=["dynamic-port", "fixed-port"])
def test_replacing_an_app_refuses_nothing_and_keeps_its_url(
    engine_project: ProjectFactory, fixed: bool
) -> None:
    port = f"port: {free_port()}" if fixed else ""
    project: EngineProject = engine_project(
        {"spec.yaml": SPEC.format(port=port), "backend.py": _backend(1)}
    )
    project.ok("apply", "spec.yaml")
    before = {a["name"]: a for a in project.api_status()["apps"]}
    poller = Poller(f"{before['backend']['url']}/v")
    poller.start()
    time.sleep(0.5)
    project.write({"backend.py": _backend(2)})
    result = project.ok("apply", "spec.yaml")
    time.sleep(0.5)
    poller.stopped.set()
    poller.join()
    after = {a["name"]: a for a in project.api_status()["apps"]}
    assert poller.errors == []
    assert set(poller.statuses) == {200}, poller.statuses
    assert len(poller.statuses) >= 20
    assert poller.versions == {1, 2}
    assert after["backend"]["url"] == before["backend"]["url"]
    assert after["backend"]["pid"] != before["backend"]["pid"]
    assert after["frontend"]["pid"] == before["frontend"]["pid"]
    assert "backend.py changed" in result.stdout
    assert httpx.get(f"{after['frontend']['url']}/v").json()["v"] == 2


def test_the_control_plane_gets_only_the_variables_the_spec_references(
    engine_project: ProjectFactory,
) -> None:
    spec = (
        "version: 1\nproject: quiet\nsecrets:\n  key: {env: SEAM_SECRET}\n"
        "apps:\n  api:\n    env: {MODE: '${SEAM_MODE:-x}'}\n    secrets: [key]\n"
        "    routes: [{method: GET, path: /, respond: {json: ok}}]\n"
    )
    project = engine_project({"spec.yaml": spec})
    env = {**project.env, "SEAM_SECRET": "s", "SEAM_MODE": "m", "SEAM_MARKER": "leak-me-not"}
    project.ok("apply", "spec.yaml", env=env)
    pid = project.api_status()["control_plane"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [item for item in environ if item.startswith(b"SEAM_MARKER=")]
    app_pid = project.api_status()["apps"][0]["pid"]
    app_environ = Path(f"/proc/{app_pid}/environ").read_bytes().split(b"\0")
    assert b"KEY=s" in app_environ and b"MODE=m" in app_environ  # what the spec reads arrives
    assert not [item for item in app_environ if b"leak-me-not" in item]


def test_an_app_that_stops_answering_is_restarted(engine_project: ProjectFactory) -> None:
    spec = "version: 1\nproject: wedged\napps:\n  api:\n"
    spec += "    routes: [{method: GET, path: /, respond: {json: ok}}]\n"
    project = engine_project({"spec.yaml": spec})
    env = {**project.env, "ENGINE_HEALTH_INTERVAL": "0.3"}
    project.ok("apply", "spec.yaml", env=env)
    before = project.api_status()["apps"][0]
    os.kill(before["pid"], signal.SIGSTOP)  # alive, but answering nothing
    try:
        after = project.wait_for(
            lambda: next(
                (a for a in project.api_status()["apps"] if a["pid"] not in (None, before["pid"])),
                None,
            ),
            timeout=40,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(before["pid"], signal.SIGCONT)
    assert after["restarts"] >= 1
    assert after["url"] == before["url"]
    assert wait_for(lambda: httpx.get(after["url"], timeout=2).status_code == 200)
    log = (project.engine_dir / "logs" / "api.log").read_text()
    assert "did not answer its health check 3 times in a row; restarting it" in log


def test_a_user_can_pin_the_control_planes_port(engine_project: ProjectFactory) -> None:
    spec = "version: 1\nproject: pinned\napps:\n  api:\n"
    spec += "    routes: [{method: GET, path: /, respond: {json: ok}}]\n"
    project = engine_project({"spec.yaml": spec})
    port = free_port()
    env = {**project.env, "ENGINE_CONTROL_PLANE_PORT": str(port)}
    result = project.ok("apply", "spec.yaml", env=env)
    assert f"Console: http://127.0.0.1:{port}/login?code=" in result.stdout
    assert project.api_status()["control_plane"]["url"] == f"http://127.0.0.1:{port}"
