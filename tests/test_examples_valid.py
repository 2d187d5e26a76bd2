"""Every example validates, compiles, and its generated apps import and answer their health check.

Each generated module is imported in a fresh interpreter, with the environment engine would
give the app (its secrets, the endpoints of its dependencies, the run API's address) and the
example's folder as working directory, so that a runtime that rejects what the compiler
emits shows up here rather than at `engine apply`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from engine.compiler import compile_spec, write_build
from engine.load import check_spec
from engine.spec.model import App, Spec, Task, env_name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPECS = sorted(EXAMPLES.glob("*/spec.yaml"))
MODELINE = "# yaml-language-server: $schema=../../schemas/engine.schema.json"
# Valid as a bearer token, a GitHub secret and a Standard Webhooks secret alike.
SECRET_VALUE = "whsec_" + base64.b64encode(b"example-secret-for-tests-only!!").decode()
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

IMPORT_AND_CHECK = """
import sys
from starlette.testclient import TestClient
from _engine_app import app
with TestClient(app, base_url="http://127.0.0.1") as client:
    response = client.get(sys.argv[1])
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.json() == {"status": "healthy"}, response.text
print("ok")
"""

IMPORT_TASK = """
import importlib, sys
module, _, function = sys.argv[1].partition(":")
assert callable(getattr(importlib.import_module(module), function))
print("ok")
"""


def _example_id(spec: Path) -> str:
    return spec.parent.name


def _load_env(spec: Path) -> dict[str, str]:
    """Values for the environment variables the spec reads when it is loaded or applied."""
    text = spec.read_text(encoding="utf-8")
    needed = {name: "example" for name in _VAR.findall(text)}
    for source in (yaml.safe_load(text).get("secrets") or {}).values():
        if "env" in source:
            needed[source["env"]] = SECRET_VALUE
    return needed


def _checked(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    for name, value in _load_env(spec_file).items():
        monkeypatch.setenv(name, value)
    return check_spec(spec_file).spec


def _process_env(spec: Spec, owner: App | Task, tmp_path: Path) -> dict[str, str]:
    """The environment engine gives an app's or task's process (with stand-in values)."""
    ports = {name: 20000 + i for i, name in enumerate(sorted(spec.apps))}
    endpoints = {dep: f"http://127.0.0.1:{ports[dep]}" for dep in owner.depends_on}
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
    env |= {key: str(value) for key, value in owner.env.items()}
    grants = owner.all_grants() if isinstance(owner, App) else owner.grants
    for grant in grants:
        if grant.as_file:
            path = tmp_path / f"{grant.variable}.secret"
            path.write_text(SECRET_VALUE, encoding="utf-8")
            env[f"{grant.variable}_FILE"] = str(path)
        else:
            env[grant.variable] = SECRET_VALUE
    env |= {f"{env_name(dep)}_ENDPOINT": url for dep, url in endpoints.items()}
    env |= {
        "ENGINE_PROJECT": spec.project,
        "ENGINE_API_URL": "http://127.0.0.1:9",
        "ENGINE_API_TOKEN": "token-for-tests",
        "ENGINE_DATA_DIR": str(tmp_path / "data" / owner.name),
        "ENGINE_ENDPOINTS": json.dumps(endpoints),
    }
    env["ENGINE_APP" if isinstance(owner, App) else "ENGINE_TASK"] = owner.name
    return env


def _python(code: str, *args: str, env: dict[str, str], cwd: Path, path: list[Path]) -> str:
    env = env | {
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_there_are_examples() -> None:
    assert len(SPECS) >= 8


@pytest.mark.parametrize("spec_file", SPECS, ids=_example_id)
def test_example_has_modeline_and_readme(spec_file: Path) -> None:
    assert spec_file.read_text(encoding="utf-8").splitlines()[0] == MODELINE
    assert (spec_file.parent / "README.md").is_file()


@pytest.mark.parametrize("spec_file", SPECS, ids=_example_id)
def test_example_validates_without_warnings(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _load_env(spec_file).items():
        monkeypatch.setenv(name, value)
    checked = check_spec(spec_file)
    assert checked.warnings == []


@pytest.mark.parametrize("spec_file", SPECS, ids=_example_id)
def test_example_apps_import_and_answer_health(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _checked(spec_file, monkeypatch)
    build = compile_spec(spec)
    out = tmp_path / "build"
    write_build(build, out)
    generated = [app for app in spec.apps.values() if app.generated]
    for app in generated:
        env = _process_env(spec, app, tmp_path)
        folder = out / app.name
        output = _python(
            IMPORT_AND_CHECK, app.health, env=env, cwd=spec.root, path=[folder, spec.root]
        )
        assert output.strip() == "ok", app.name


@pytest.mark.parametrize("spec_file", SPECS, ids=_example_id)
def test_example_task_handlers_import(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _checked(spec_file, monkeypatch)
    for task in spec.tasks.values():
        env = _process_env(spec, task, tmp_path)
        ref = task.handler.ref
        assert _python(IMPORT_TASK, ref, env=env, cwd=spec.root, path=[spec.root]).strip() == "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("spec_file", SPECS, ids=_example_id)
def test_example_command_apps_answer_health(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _checked(spec_file, monkeypatch)
    for app in spec.apps.values():
        if app.generated:
            continue
        port = _free_port()
        command = app.command if isinstance(app.command, tuple) else tuple(app.command.split())
        argv = [
            sys.executable if c == "python" else c.replace("{port}", str(port)) for c in command
        ]
        env = _process_env(spec, app, tmp_path)
        process = subprocess.Popen(argv, cwd=spec.root, env=env, stdout=subprocess.DEVNULL)
        try:
            assert _health(f"http://127.0.0.1:{port}{app.health}") == 200, app.name
        finally:
            process.terminate()
            process.wait(timeout=10)


def _health(url: str) -> int | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=1).status_code
        except httpx.TransportError:
            time.sleep(0.1)
    return None
