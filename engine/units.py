"""The units a backend runs: one `AppUnit` or `TaskUnit` per app and task of a compiled spec.

    units = build_units(build, secrets, plan)
    units.apps["backend"].bundle.write(folder)

A unit is a version: its `hash` is the plan's desired hash, so a backend tells versions
apart by it, and its bundle holds every file that version runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.backends.base import AppUnit, Bundle, Dependency, SecretGrant, TaskUnit
from engine.compiler import Artifact, Build
from engine.plan import Plan
from engine.runs.inputs import input_schema
from engine.spec.model import App, Grant, Task, env_name


@dataclass(frozen=True)
class Units:
    """Every app and task of a spec as units, by name."""

    apps: dict[str, AppUnit]
    tasks: dict[str, TaskUnit]


def endpoint_variable(app: str) -> str:
    """`backend` -> `BACKEND_ENDPOINT`."""
    return f"{env_name(app)}_ENDPOINT"


def _bundle(artifact: Artifact, build: Build, hash: str) -> Bundle:
    root, files, source = build.spec.root, artifact.files, artifact.source
    if artifact.kind == "app":
        return Bundle(artifact.name, "app", hash, root, files, source)
    return Bundle(artifact.name, "task", hash, root, files, source)


def _grants(grants: tuple[Grant, ...]) -> tuple[SecretGrant, ...]:
    return tuple(SecretGrant(g.secret, g.variable, g.as_file) for g in grants)


def _secrets(grants: tuple[Grant, ...], secrets: Mapping[str, str]) -> dict[str, str]:
    return {g.secret: secrets[g.secret] for g in grants}


def _dependencies(names: tuple[str, ...]) -> tuple[Dependency, ...]:
    return tuple(Dependency(name, endpoint_variable(name)) for name in names)


def app_unit(build: Build, app: App, secrets: Mapping[str, str], hash: str) -> AppUnit:
    """The unit of `app` at version `hash`."""
    grants = app.all_grants()
    return AppUnit(
        name=app.name,
        hash=hash,
        bundle=_bundle(build.apps[app.name], build, hash),
        env=dict(app.env),
        grants=_grants(grants),
        secrets=_secrets(grants, secrets),
        depends_on=_dependencies(app.depends_on),
        health=app.health,
        replicas=app.replicas,
        port=app.port,
        command=app.command,
        static_dir=app.static.dir if app.static else None,
    )


def task_unit(build: Build, task: Task, secrets: Mapping[str, str], hash: str) -> TaskUnit:
    """The unit of `task` at version `hash`."""
    return TaskUnit(
        name=task.name,
        hash=hash,
        handler=task.handler.ref,
        bundle=_bundle(build.tasks[task.name], build, hash),
        env=dict(task.env),
        grants=_grants(task.grants),
        secrets=_secrets(task.grants, secrets),
        depends_on=_dependencies(task.depends_on),
        retries=task.retries,
        timeout=task.timeout,
        concurrency=task.concurrency,
        input_schema=input_schema(task.inputs),
    )


def build_units(build: Build, secrets: Mapping[str, str], plan: Plan) -> Units:
    """Every app and task of `build` at the version `plan` wants."""
    spec = build.spec
    apps = {
        name: app_unit(build, app, secrets, plan.desired_hash("app", name))
        for name, app in spec.apps.items()
    }
    tasks = {
        name: task_unit(build, task, secrets, plan.desired_hash("task", name))
        for name, task in spec.tasks.items()
    }
    return Units(apps, tasks)
