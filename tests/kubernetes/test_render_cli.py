"""`engine render --target` writes what the renderer gives, privately, the same bytes twice."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = """
targets:
  k8s: {backend: kubernetes, namespace: shop, image: registry.example/engine-runtime:test}
"""


def render(project: Path, out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "render", "--target", "k8s", "-o", out],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WEBHOOK_API_KEY": "k"},
    )


def test_render_writes_private_deterministic_manifests(tmp_path: Path) -> None:
    project = tmp_path / "app-calls-app"
    shutil.copytree(ROOT / "examples" / "app-calls-app", project)
    (project / "spec.yaml").write_text((project / "spec.yaml").read_text() + TARGET)
    first, second = render(project, "one"), render(project, "two")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    files = sorted(p.relative_to(project / "one") for p in (project / "one").rglob("*.yaml"))
    assert any(str(f).startswith("deployment-") for f in files)
    assert first.stdout.splitlines() == [str(Path("one") / f) for f in files]
    for name in files:
        one, two = project / "one" / name, project / "two" / name
        assert one.read_bytes() == two.read_bytes()
        assert stat.S_IMODE(one.stat().st_mode) == 0o600
