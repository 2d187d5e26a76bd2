"""The Ray backend: apps as Ray Serve applications, task attempts as Ray jobs.

The control plane talks to the cluster's dashboard over HTTP only (Serve's declarative
REST API, the Jobs API, the package and log APIs) and never imports Ray; the modules that
run on the cluster (the generated Serve entry, `job_entry`) do. See docs/ray.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.base import Locate, ProjectContext
from engine.backends.ray.config import (
    Cluster,
    application,
    dumps,
    entry_source,
    job_request,
    package,
    serve_config,
    submission_id,
)
from engine.errors import Diagnostic, UsageError
from engine.layout import Layout
from engine.spec.model import Spec, Target

if TYPE_CHECKING:  # replicas import this package (for secretfile): keep it light
    from engine.backends.ray.jobs import RayJobExecutor
    from engine.backends.ray.serve import RayBackend
    from engine.units import Units

__all__ = ["check", "create", "render"]

SECRETS_FOLDER = "ray-secrets"


def secrets_dir(state_dir: Path) -> Path:
    """Where the target's 0600 secret files live, under its state folder."""
    return state_dir / SECRETS_FOLDER


def create(
    target: Target, context: ProjectContext, state_dir: Path, secrets: Mapping[str, str]
) -> tuple[RayBackend, RayJobExecutor]:
    """The backend and task executor of a `ray` target (no network call yet)."""
    from engine.backends.ray.dashboard import Dashboard
    from engine.backends.ray.jobs import RayJobExecutor
    from engine.backends.ray.serve import RayBackend

    if not target.address:
        raise UsageError(f"target {target.name!r} has no `address` (the Ray dashboard's URL)")
    token = secrets.get(target.token) if target.token else None
    if target.token and token is None:
        raise UsageError(f"target {target.name!r} names the secret {target.token!r}, unset")
    cluster = Cluster.of(target, context.project, secrets_dir(state_dir))
    backend = RayBackend(cluster, context, Dashboard(target.address, token))
    executor = RayJobExecutor(cluster, context, Dashboard(target.address, token))
    return backend, executor


def render(target: Target, units: Units, context: ProjectContext) -> dict[str, bytes]:
    """The Serve config, each app's entry module and each task's job submission.

    The state folder is the target's under the project (`Layout.dir`, where the control
    plane keeps it), so the secrets files' paths match what apply sends.
    """
    state_dir = Layout(context.root, target.name).dir
    cluster = Cluster.of(target, context.project, secrets_dir(state_dir))
    endpoints = cluster.endpoints(sorted(units.apps))
    files: dict[str, bytes] = {}
    applications = []
    for name, unit in sorted(units.apps.items()):
        uri = package(context.project, unit)[0]
        applications.append(application(cluster, context, unit, endpoints, uri))
        files[f"serve/{name}/_engine_serve.py"] = entry_source(context.project, name).encode()
    files["serve.json"] = dumps(serve_config(cluster, applications))
    for name, task in sorted(units.tasks.items()):
        uri = package(context.project, task)[0]
        submission = submission_id(context.project, "<run-id>", 1)
        body = job_request(
            cluster, context, task, endpoints, uri,
            submission=submission, inputs="<the run's inputs as JSON>",
            extra_env={"ENGINE_RUN_ID": "<run-id>", "ENGINE_ATTEMPT": "1"},
        )  # fmt: skip
        files[f"jobs/{name}.json"] = dumps(body)
    return files


def check(target: Target, spec: Spec, locate: Locate) -> list[Diagnostic]:
    """What a Ray target cannot run: `command:` apps and fixed ports."""
    errors = []
    for name, app in sorted(spec.apps.items()):
        if app.command is not None:
            errors.append(
                locate(
                    ("apps", name, "command"),
                    f"target {target.name!r} (ray) runs generated apps only: Serve cannot run "
                    "your own process; describe the app with routes, or run it on a local "
                    "target",
                )
            )
        if app.port is not None:
            errors.append(
                locate(
                    ("apps", name, "port"),
                    f"target {target.name!r} (ray) serves every app through Serve's proxy at "
                    f"/{name} on serve_port, so an app cannot have a fixed port: remove `port:`",
                )
            )
    return errors
