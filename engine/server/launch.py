"""How each app and task is started: command line, working directory and environment.

The environment is a minimal base (PATH, HOME, LANG, TZ), the declared `env`, the granted
secrets, the injected endpoints and engine's own variables; nothing else of the applying
user's environment reaches an app or a task.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.backends.base import SecretGrant
from engine.backends.local.secrets import secret_env
from engine.compiler import MODULE_NAME
from engine.layout import Layout
from engine.server.supervisor import PORT, ProcessSpec
from engine.spec.model import App, Grant, Spec, env_name

BASE_VARIABLES = ("PATH", "HOME", "LANG", "TZ")


@dataclass(frozen=True)
class ControlPlaneAddress:
    """What every process needs to reach the run API."""

    url: str
    token: str


def endpoint_variable(app: str) -> str:
    """`backend` -> `BACKEND_ENDPOINT`."""
    return f"{env_name(app)}_ENDPOINT"


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of the applying user's environment every app and task gets."""
    return {k: environ[k] for k in BASE_VARIABLES if k in environ}


def _secret_env(
    layout: Layout, owner: str, grants: tuple[Grant, ...], secrets: Mapping[str, str]
) -> dict[str, str]:
    granted = [SecretGrant(g.secret, g.variable, g.as_file) for g in grants]
    return secret_env(layout.secret_files / owner, granted, secrets)


def _common_env(
    spec: Spec,
    layout: Layout,
    environ: Mapping[str, str],
    declared: Mapping[str, str],
    endpoints: Mapping[str, str],
    api: ControlPlaneAddress,
) -> dict[str, str]:
    env = base_env(environ)
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
