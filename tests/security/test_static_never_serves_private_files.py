"""Item 6: a static folder never serves `.engine/` (the API token), secrets or the spec;
`engine validate` refuses such a folder; the apply API applies only the project's own spec.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import EngineProject, engine_command
from tests.runtime.conftest import ProcessServer, process_server  # noqa: F401 (fixture)
from tests.security.conftest import WHSEC, spec_folder

SERVE_PROJECT_ROOT = """
from tests.runtime import declare as rt

app = rt.create_app(project="p", name="site")
rt.add_static(app, path="/", directory=".", private=("spec.yaml", "keys/gh.txt"))
"""


@pytest.fixture(scope="module")
def root_server(process_server: Callable[..., ProcessServer]) -> ProcessServer:  # noqa: F811
    """A real uvicorn serving its project's root folder, as `static: {dir: .}` would."""
    server = process_server(SERVE_PROJECT_ROOT)
    root = _cwd(server)
    (root / ".engine").mkdir()
    (root / ".engine" / "control-plane.json").write_text('{"token": "t0p-secret"}')
    (root / "spec.yaml").write_text("version: 1\n")
    (root / "keys").mkdir()
    (root / "keys" / "gh.txt").write_text("gh-secret")
    (root / ".env").write_text("A=1")
    (root / "index.html").write_text("<h1>public</h1>")
    (root / "link.json").symlink_to(root / ".engine" / "control-plane.json")
    return server


def _cwd(server: ProcessServer) -> Path:
    return Path(os.readlink(f"/proc/{server.proc.pid}/cwd"))


@pytest.mark.parametrize(
    "path",
    [
        "/.engine/control-plane.json",
        "/.engine/",
        "/%2eengine/control-plane.json",
        "/spec.yaml",
        "/keys/gh.txt",
        "/.env",
        "/link.json",
        "/keys/../.engine/control-plane.json",
    ],
)
def test_private_files_answer_404(root_server: ProcessServer, path: str) -> None:
    with httpx.Client(base_url=root_server.url, trust_env=False) as client:
        response = client.get(path)
    assert response.status_code == 404
    assert b"t0p-secret" not in response.content and b"gh-secret" not in response.content


def test_public_files_are_still_served(root_server: ProcessServer) -> None:
    with httpx.Client(base_url=root_server.url, trust_env=False) as client:
        assert client.get("/").text == "<h1>public</h1>"
        assert client.get("/index.html").status_code == 200


@pytest.mark.parametrize(
    ("static", "holds"),
    [
        ("{path: /, dir: .}", ".engine/"),
        ("{path: /, dir: ../}", ".engine/"),
        ("{path: /, dir: keys}", "the file of secret 'gh'"),
    ],
)
def test_validate_refuses_a_static_folder_holding_private_files(
    tmp_path: Path, static: str, holds: str
) -> None:
    spec = spec_folder(
        tmp_path,
        "version: 1\nproject: pp\nsecrets:\n  gh: {file: keys/gh.txt}\n"
        f"apps:\n  site:\n    static: {static}\n",
        {"keys/gh.txt": "x"},
    )
    done = subprocess.run(
        [*engine_command(), "validate", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"{spec}:7:" in done.stderr and "apps.site.static.dir" in done.stderr
    assert holds in done.stderr and "dir: web/" in done.stderr


def _apply(project: EngineProject, spec_path: str) -> httpx.Response:
    info = project.control_plane()
    assert info is not None
    return httpx.post(
        f"{info['url']}/api/v1/apply",
        json={"spec_path": spec_path, "environ": {"BILLING_SECRET": WHSEC}},
        headers={"Authorization": f"Bearer {info['token']}"},
        timeout=30,
        trust_env=False,
    )


def test_apply_api_refuses_a_spec_outside_the_project(
    project: EngineProject, tmp_path: Path
) -> None:
    other = spec_folder(tmp_path, "version: 1\nproject: guarded\n")
    response = _apply(project, str(other))
    assert response.status_code == 403
    assert "not this project's spec" in response.json()["detail"]
    link = project.root / "linked.yaml"
    link.symlink_to(other)
    try:
        assert _apply(project, str(link)).status_code == 403
    finally:
        link.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_apply_api_refuses_a_spec_owned_by_another_user(project: EngineProject) -> None:
    foreign = project.root / "foreign.yaml"
    foreign.write_text("version: 1\nproject: guarded\n")
    os.chown(foreign, 65534, 65534)
    try:
        response = _apply(project, str(foreign))
        assert response.status_code == 403
        assert "not to the project's owner" in response.json()["detail"]
    finally:
        foreign.unlink()
    assert json.loads((project.engine_dir / "project.json").read_text())["spec_path"].endswith(
        "spec.yaml"
    )


def test_the_projects_own_spec_still_applies(project: EngineProject) -> None:
    response = _apply(project, str(project.root / "spec.yaml"))
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert events[-1]["event"] != "error", events
