"""Item 17: a handler is a module of the project (the spec's folder): validate refuses
`os:system`, an installed package, and a project file that the standard library would
shadow, positioned and saying what to do. It reads files only; it never imports user code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import engine_command
from tests.security.conftest import spec_folder

TASK = "version: 1\nproject: pp\ntasks:\n  t1:\n    handler: {handler}\n"
ROUTE = (
    "version: 1\nproject: pp\napps:\n  web:\n    routes:\n"
    "      - {{method: GET, path: /, handler: {handler}}}\n"
)


def _validate(spec: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*engine_command(), "validate", str(spec)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("template", "handler", "files", "where", "says"),
    [
        (TASK, "os:system", {}, ":5:14: tasks.t1.handler:", "Python's standard library"),
        (TASK, "subprocess:run", {"subprocess.py": ""}, ":5:14:", "rename your module"),
        (ROUTE, "yaml:safe_load", {}, ":6:41: apps.web.routes[0].handler:", "installed package"),
    ],
)
def test_validate_refuses_a_handler_outside_the_project(
    tmp_path: Path, template: str, handler: str, files: dict, where: str, says: str
) -> None:
    spec = spec_folder(tmp_path, template.format(handler=handler), files)
    done = _validate(spec)
    assert done.returncode == 1, done
    assert f"{spec}{where}" in done.stderr, done.stderr
    assert says in done.stderr and "a handler must be a module in the spec's folder" in done.stderr


def test_a_project_handler_is_accepted_without_being_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'w').close()\ndef run():\n    pass\n"
    spec = spec_folder(tmp_path, TASK.format(handler="jobs.nightly:run"), {"jobs/nightly.py": code})
    done = _validate(spec)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
