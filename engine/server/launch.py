"""How each app and task is started: command line, working directory and environment.

The environment is a minimal base (PATH, HOME, LANG, TZ), the declared `env`, the granted
secrets, the injected endpoints and engine's own variables; nothing else of the applying
user's environment reaches an app or a task.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.compiler import MODULE_NAME
from engine.layout import Layout
from engine.runs.inputs import input_schema
from engine.runs.pool import TaskConfig
from engine.server.supervisor import PORT, ProcessSpec
from engine.spec.model import App, Grant, Spec, Task, env_name

BASE_VARIABLES = ("PATH", "HOME", "LANG", "TZ")


@dataclass(frozen=True)
class ControlPlaneAddress:
    """What every process needs to reach the run API."""

    url: str
    token: str


def endpoint_variable(app: str) -> str:
    """`backend` -> `BACKEND_ENDPOINT`."""
    return f"{env_name(app)}_ENDPOINT"


def _base(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in BASE_VARIABLES if k in environ}


def _secret_env(
    layout: Layout, owner: str, grants: tuple[Grant, ...], secrets: Mapping[str, str]
) -> dict[str, str]:
    env = {}
    for grant in grants:
        if grant.as_file:
            env[f"{grant.variable}_FILE"] = str(
                _write_secret(layout, owner, grant.variable, secrets[grant.secret])
            )
        else:
            env[grant.variable] = secrets[grant.secret]
    return env


def _write_secret(layout: Layout, owner: str, variable: str, value: str) -> Path:
    folder = layout.secret_files / owner
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for parent in (folder, folder.parent, folder.parent.parent):
        os.chmod(parent, 0o700)
    path = folder / variable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return path


def _common_env(
    spec: Spec,
    layout: Layout,
    environ: Mapping[str, str],
    declared: Mapping[str, str],
    endpoints: Mapping[str, str],
    api: ControlPlaneAddress,
) -> dict[str, str]:
    env = _base(environ)
    env.update(declared)
    env.update({endpoint_variable(name): url for name, url in endpoints.items()})
    env.update(
        {
            "ENGINE_PROJECT": spec.project,
            "ENGINE_API_URL": api.url,
            "ENGINE_API_TOKEN": api.token,
            "ENGINE_ENDPOINTS": json.dumps(dict(sorted(endpoints.items()))),
            "PYTHONPATH": str(spec.root),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def app_process(
    spec: Spec,
    app: App,
    *,
    desired_hash: str,
    build_dir: Path,
    layout: Layout,
    environ: Mapping[str, str],
    secrets: Mapping[str, str],
    endpoints: Mapping[str, str],
    api: ControlPlaneAddress,
    health_timeout: float,
) -> ProcessSpec:
    """The ProcessSpec of `app`, given the endpoints of the apps it depends on."""
    env = _common_env(spec, layout, environ, app.env, endpoints, api)
    env.update(_secret_env(layout, app.name, app.all_grants(), secrets))
    data = layout.data(app.name)
    data.mkdir(parents=True, exist_ok=True)
    env.update({"ENGINE_APP": app.name, "ENGINE_DATA_DIR": str(data)})
    if app.generated:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{MODULE_NAME}:app",
            "--app-dir",
            str(build_dir),
            "--host",
            "127.0.0.1",
            "--port",
            PORT,
        ]
        if app.replicas > 1:
            argv += ["--workers", str(app.replicas)]
    elif isinstance(app.command, str):
        argv = ["/bin/sh", "-c", app.command]
    else:
        argv = list(app.command or ())
    config = {"depends_on": list(app.depends_on), "port": app.port, "health": app.health}
    return ProcessSpec(
        name=app.name,
        argv=argv,
        env=env,
        cwd=spec.root,
        hash=desired_hash,
        port=app.port,
        health_path=app.health,
        health_timeout=health_timeout,
        log_path=layout.logs / f"{app.name}.log",
        config_json=json.dumps(config, sort_keys=True),
    )


def task_config(
    spec: Spec,
    task: Task,
    *,
    layout: Layout,
    environ: Mapping[str, str],
    secrets: Mapping[str, str],
    endpoints: Mapping[str, str],
    api: ControlPlaneAddress,
) -> TaskConfig:
    """The runner's TaskConfig of `task`."""
    env = _common_env(spec, layout, environ, task.env, endpoints, api)
    env.update(_secret_env(layout, f"task-{task.name}", task.grants, secrets))
    env["ENGINE_TASK"] = task.name
    return TaskConfig(
        name=task.name,
        handler=task.handler.ref,
        env=env,
        cwd=spec.root,
        retries=task.retries,
        timeout=task.timeout,
        input_schema=input_schema(task.inputs),
        concurrency=task.concurrency,
    )
