"""What a Ray target is given, offline: golden Serve configs and job submissions, refusals."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from engine.backends import ray as ray_backend
from engine.backends.ray.secretfile import load_secrets, write_secrets
from engine.errors import SpecError
from engine.load import check_spec
from engine.runtime.credentials import credential_headers, mint
from tests.ray.conftest import API_TOKEN, EXAMPLES, REPO, load, ray_target

GOLDEN = Path(__file__).parent / "golden"
RAY_EXAMPLES = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "browser")


def rendered(example: str) -> dict[str, bytes]:
    loaded = load(EXAMPLES / example / "spec.yaml")
    return ray_backend.render(ray_target(), loaded.units, loaded.context)


def portable(data: bytes) -> str:
    """The rendering with this machine's paths (repo, interpreter) as placeholders."""
    return data.decode().replace(sys.executable, "<python>").replace(str(REPO), "<repo>")


@pytest.mark.parametrize("example", RAY_EXAMPLES)
def test_render_matches_golden_files(example: str) -> None:
    files = rendered(example)
    folder = GOLDEN / example
    if os.environ.get("ENGINE_UPDATE_GOLDEN"):
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(portable(data))
    expected = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(files) == expected
    for name, data in files.items():
        assert portable(data) == (folder / name).read_text(), name


@pytest.mark.parametrize("example", RAY_EXAMPLES)
def test_render_is_deterministic_and_holds_no_secret(example: str) -> None:
    first, second = rendered(example), rendered(example)
    assert first == second
    loaded = load(EXAMPLES / example / "spec.yaml")
    text = b"".join(first.values()).decode()
    for value in [*loaded.secrets.values(), API_TOKEN]:
        assert value not in text


def test_serve_config_maps_the_spec() -> None:
    config = json.loads(rendered("app-calls-app")["serve.json"])
    apps = {a["name"]: a for a in config["applications"]}
    assert sorted(apps) == ["app-calls-app.backend", "app-calls-app.frontend"]
    frontend = apps["app-calls-app.frontend"]
    assert frontend["route_prefix"] == "/frontend"
    assert frontend["import_path"] == "_engine_serve:app"
    assert frontend["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")
    env = frontend["runtime_env"]["env_vars"]
    assert env["BACKEND_ENDPOINT"] == "http://127.0.0.1:8000/backend"
    assert frontend["deployments"] == [
        {"name": "Ingress", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}}
    ]
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000}


def test_a_job_submission_names_the_secrets_file_not_the_secret(tmp_path: Path) -> None:
    body = json.loads(rendered("github-webhook")["jobs/deploy.json"])
    env = body["runtime_env"]["env_vars"]
    assert env["ENGINE_SECRETS_FILE"].endswith(".json")
    assert "ENGINE_API_TOKEN" not in env
    assert body["entrypoint"].startswith(f"{sys.executable} -m engine.backends.ray.job_entry")
    assert body["submission_id"] == "engine-github-webhook-<run-id>-1"


def spec_with_ray_target(tmp_path: Path, apps: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "version: 1\nproject: pr\n"
        "targets:\n  ray-dev: {backend: ray, address: 'http://127.0.0.1:8265'}\n"
        f"apps:\n{apps}"
    )
    (tmp_path / "h.py").write_text("def f():\n    return {}\n")
    return path


def test_validate_refuses_command_apps_and_fixed_ports_on_ray(tmp_path: Path) -> None:
    path = spec_with_ray_target(
        tmp_path,
        "  own:\n    command: [python, server.py, '{port}']\n"
        "  fixed:\n    port: 9123\n    routes:\n      - {method: GET, path: /, handler: h:f}\n",
    )
    check_spec(path, label="spec.yaml")  # valid for the local target
    with pytest.raises(SpecError) as caught:
        check_spec(path, label="spec.yaml", target="ray-dev")
    messages = [str(d) for d in caught.value.diagnostics]
    assert messages == [
        "spec.yaml:7:14: apps.own.command: target 'ray-dev' (ray) runs generated apps only: "
        "Serve cannot run your own process; describe the app with routes, or run it on a "
        "local target",
        "spec.yaml:9:11: apps.fixed.port: target 'ray-dev' (ray) serves every app through "
        "Serve's proxy at /fixed on serve_port, so an app cannot have a fixed port: "
        "remove `port:`",
    ]


def test_a_spec_ray_can_run_passes_its_check(tmp_path: Path) -> None:
    path = spec_with_ray_target(
        tmp_path, "  ok:\n    routes:\n      - {method: GET, path: /, handler: h:f}\n"
    )
    assert check_spec(path, target="ray-dev").spec.apps["ok"].port is None


def test_a_tasks_minted_credential_reaches_its_job_through_the_secrets_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load(REPO / "tests" / "fixtures" / "task_auth" / "spec.yaml")
    token = loaded.secrets["backend-token"]
    minted = mint(token, "task-auth", "backend", "nightly-report", "task")
    files = ray_backend.render(ray_target(), loaded.units, loaded.context)
    body = json.loads(files["jobs/nightly-report.json"])
    env = body["runtime_env"]["env_vars"]
    assert json.loads(env["ENGINE_CREDENTIALS"])["backend"]["env"] == "ENGINE_CREDENTIAL_BACKEND"
    assert "ENGINE_CREDENTIAL_BACKEND" not in env
    assert not [f for f, data in files.items() if minted.encode() in data or token.encode() in data]
    # What the job's entry does on a node: load the 0600 file, then the runtime's client.
    unit = loaded.units.tasks["nightly-report"]
    written = write_secrets(tmp_path, unit, {})
    monkeypatch.setenv("ENGINE_SECRETS_FILE", str(written.values))
    monkeypatch.setenv("ENGINE_CREDENTIALS", env["ENGINE_CREDENTIALS"])
    monkeypatch.setenv("ENGINE_CREDENTIAL_BACKEND", "")  # so that the test's end unsets it
    monkeypatch.delenv("ENGINE_CREDENTIAL_BACKEND")
    load_secrets()
    assert credential_headers("backend") == {"Authorization": f"Bearer {minted}"}
