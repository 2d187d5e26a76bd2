"""How the runner starts a task's workers: the task's environment and limits.

The environment is a minimal base (PATH, HOME, LANG, TZ), the declared `env`, the granted
secrets, the injected endpoints and engine's own variables; nothing else of the applying
user's environment reaches a task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from engine.backends.base import SecretGrant
from engine.backends.local.environment import base_environment, secret_environment
from engine.layout import Layout
from engine.runs.inputs import input_schema
from engine.runs.pool import TaskConfig
from engine.spec.model import Spec, Task
from engine.units import endpoint_variable


@dataclass(frozen=True)
class ControlPlaneAddress:
    """What every process needs to reach the run API."""

    url: str
    token: str


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
    env = base_environment(environ)
    env.update(task.env)
    env.update({endpoint_variable(name): url for name, url in endpoints.items()})
    env.update(
        {
            "ENGINE_PROJECT": spec.project,
            "ENGINE_API_URL": api.url,
            "ENGINE_API_TOKEN": api.token,
            "ENGINE_ENDPOINTS": json.dumps(dict(sorted(endpoints.items()))),
            "PYTHONPATH": str(spec.root),
            "PYTHONUNBUFFERED": "1",
            "ENGINE_TASK": task.name,
        }
    )
    grants = [SecretGrant(g.secret, g.variable, g.as_file) for g in task.grants]
    env.update(secret_environment(layout.secret_files / f"task-{task.name}", grants, secrets))
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
