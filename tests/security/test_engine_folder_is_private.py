"""Item 7: every file and folder under `.engine/` is private to its user (no group or
other permission bits), whichever command created it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import EngineProject, engine_command
from tests.security.conftest import FILES


def _shared(folder: Path) -> list[str]:
    """Everything under `folder` (itself included) that a group or other user may use."""
    found = []
    for top, dirs, files in os.walk(folder):
        for path in [Path(top), *(Path(top) / name for name in dirs + files)]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{path.relative_to(folder.parent)} {stat.filemode(mode)}")
    return found


def test_apply_and_runs_leave_nothing_readable_by_others(
    project: EngineProject, web_url: str
) -> None:
    response = httpx.post(f"{web_url}/run", json={"x": 1}, timeout=30, trust_env=False)
    assert response.status_code < 300, response.text
    made = {p.name for p in project.engine_dir.rglob("*")}
    assert {"state.db", "runs.db", "control-plane.json", "build", "logs"} <= made, made
    assert _shared(project.engine_dir) == []


def test_build_makes_a_private_engine_folder(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [*engine_command(), "build", "spec.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BILLING_SECRET": "x"},
    )
    assert done.returncode == 0, done.stderr
    assert any((tmp_path / ".engine" / "build").rglob("*.py"))
    assert _shared(tmp_path / ".engine") == []


def test_the_control_plane_tightens_an_older_open_engine_folder(tmp_path: Path) -> None:
    """A `.engine/` an older engine left open (0755, 0644) is closed when a control plane starts."""
    engine_dir = tmp_path / ".engine"
    (engine_dir / "logs").mkdir(parents=True)
    (engine_dir / "logs" / "old.log").write_text("run inputs")
    for path, mode in ((engine_dir, 0o755), (engine_dir / "logs", 0o755)):
        os.chmod(path, mode)
    os.chmod(engine_dir / "logs" / "old.log", 0o644)
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.server", str(engine_dir)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        EngineProject.wait_for(lambda: (engine_dir / "control-plane.json").exists())
        assert _shared(engine_dir) == []
    finally:
        server.terminate()
        server.wait(10)
