"""How the local backend starts one version of an app: command line, folder, environment."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from engine.backends.base import MODULE_FILE, AppUnit, ProjectContext, unit_environment
from engine.backends.local.environment import secret_environment
from engine.backends.local.supervisor import FD, HEALTH_PORT, ProcessSpec
from engine.compiler import write_module
from engine.layout import MARKER_VARIABLE, Layout

MODULE = MODULE_FILE.removesuffix(".py")


def app_process(
    unit: AppUnit,
    *,
    context: ProjectContext,
    layout: Layout,
    base_env: Mapping[str, str],
    endpoints: Mapping[str, str],
    health_timeout: float,
) -> ProcessSpec:
    """The ProcessSpec of `unit`, given the current URL of every app.

    A generated app is served by `engine.backends.local.serve` on the socket the supervisor
    holds for it, from a build folder of its own version (so an old version never restarts
    into new code); a `command:` app binds its port itself.
    """
    env = dict(base_env)
    env.update(unit_environment(context, unit, endpoints))
    env.update(secret_environment(layout.secret_files / unit.name, unit.grants, unit.secrets))
    data = layout.data(unit.name)
    data.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "ENGINE_API_TOKEN": context.api_token,
            "ENGINE_DATA_DIR": str(data),
            MARKER_VARIABLE: layout.marker,
            "PYTHONPATH": str(context.root),
        }
    )
    listen = unit.command is None
    if listen:
        folder = layout.app_build(unit.name, unit.hash)
        if unit.bundle.generated is not None:
            write_module(unit.bundle.generated, folder)
        argv = [sys.executable, "-m", "engine.backends.local.serve", "--fd", FD]
        argv += ["--health-port", HEALTH_PORT, "--workers", str(unit.replicas)]
        argv += ["--health-path", unit.health]
        argv += [str(folder), f"{MODULE}:app"]
    elif isinstance(unit.command, str):
        argv = ["/bin/sh", "-c", unit.command]
    else:
        argv = list(unit.command or ())
    config = {
        "depends_on": [d.app for d in unit.depends_on],
        "port": unit.port,
        "health": unit.health,
    }
    return ProcessSpec(
        name=unit.name,
        argv=argv,
        env=env,
        cwd=context.root,
        hash=unit.hash,
        port=unit.port,
        health_path=unit.health,
        health_timeout=health_timeout,
        log_path=layout.logs / f"{unit.name}.log",
        config_json=json.dumps(config, sort_keys=True),
        listen=listen,
    )


def stopped_app_spec(name: str, reason: str, record_hash: str, root: Path) -> ProcessSpec:
    """A stand-in for an app that cannot be restarted: it exits at once, saying why."""
    message = f"engine: cannot restart {name}: {reason}; run `engine apply` to start it again"
    return ProcessSpec(
        name=name,
        argv=["/bin/sh", "-c", 'echo "$1" >&2; exit 1', "sh", message],
        env={},
        cwd=root,
        hash=record_hash,
    )
