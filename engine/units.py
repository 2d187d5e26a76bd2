"""The units a backend runs: one `AppUnit` or `TaskUnit` per app and task of a compiled spec.

    units = build_units(build, secrets, plan)
    units.apps["backend"].bundle.write(folder)

A unit is a version: its `hash` is the plan's desired hash, so a backend tells versions
apart by it, and its bundle holds every file that version runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from engine.backends.base import AppUnit, Bundle, Dependency, SecretGrant, TaskUnit
from engine.compiler import Artifact, Build
from engine.plan import Plan
from engine.runs.inputs import input_schema
from engine.runtime import SECRETS_VARIABLE
from engine.runtime.credentials import CREDENTIALS_VARIABLE, Caller, mint
from engine.spec.model import App, Credential, Grant, Task, env_name


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


def _grant_env(grants: tuple[Grant, ...]) -> dict[str, str]:
    """Where each granted secret is (name -> variable, no value), so that `secret(name)`
    finds a renamed grant and says which grant is missing in the spec's words."""
    where = {g.secret: g.variable for g in grants}
    return {SECRETS_VARIABLE: json.dumps(where, sort_keys=True)}


def _secrets(grants: tuple[Grant, ...], secrets: Mapping[str, str]) -> dict[str, str]:
    return {g.secret: secrets[g.secret] for g in grants}


def _dependencies(names: tuple[str, ...], named: Mapping[str, str]) -> tuple[Dependency, ...]:
    """Each app depended on, with its variable: the one the spec names, or `<NAME>_ENDPOINT`."""
    return tuple(Dependency(name, named.get(name) or endpoint_variable(name)) for name in names)


def credential_secret(caller: str, credential: Credential, kind: Caller = "app") -> str:
    """The name of app (or task) `caller`'s minted credential among the secrets a target
    holds: one per pair (targets share secrets by name), with dots, which no spec secret
    name has but a Kubernetes object name may; a task's has one part more
    (`credential.task.<task>.<app>`), since names have no dots. Names that would pass 63
    characters (a label value's limit) are shortened to a digest of the pair."""
    pair = (caller, credential.app) if kind == "app" else ("task", caller, credential.app)
    name = "credential." + ".".join(pair)
    if len(name) <= 63:
        return name
    return "credential." + hashlib.sha256("\0".join(pair).encode()).hexdigest()[:32]


def _credential_grants(caller: App | Task) -> tuple[SecretGrant, ...]:
    kind = _kind(caller)
    return tuple(
        SecretGrant(credential_secret(caller.name, c, kind), c.variable) for c in caller.credentials
    )


def _credential_values(
    project: str, caller: App | Task, secrets: Mapping[str, str]
) -> dict[str, str]:
    """The credential `caller` presents to each app that lets it call (derived, never
    stored)."""
    kind = _kind(caller)
    return {
        credential_secret(caller.name, c, kind): mint(
            secrets[c.secret], project, c.app, caller.name, kind
        )
        for c in caller.credentials
    }


def _credential_env(caller: App | Task) -> dict[str, str]:
    """What the caller's runtime needs to attach its credentials: no values, only where."""
    if not caller.credentials:
        return {}
    where = {
        c.app: {"kind": c.kind, "header": c.header, "env": c.variable} for c in caller.credentials
    }
    return {CREDENTIALS_VARIABLE: json.dumps(where, sort_keys=True)}


def _kind(caller: App | Task) -> Caller:
    return "app" if isinstance(caller, App) else "task"


def app_unit(build: Build, app: App, secrets: Mapping[str, str], hash: str) -> AppUnit:
    """The unit of `app` at version `hash`."""
    grants = app.all_grants()
    minted = _credential_values(build.spec.project, app, secrets)
    return AppUnit(
        name=app.name,
        hash=hash,
        bundle=_bundle(build.apps[app.name], build, hash),
        env={**app.env, **_grant_env(grants), **_credential_env(app)},
        grants=_grants(grants) + _credential_grants(app),
        secrets={**_secrets(grants, secrets), **minted},
        depends_on=_dependencies(app.depends_on, app.endpoint_env),
        health=app.health,
        replicas=app.replicas,
        port=app.port,
        command=app.command,
        static_dir=app.static.dir if app.static else None,
    )


def task_unit(build: Build, task: Task, secrets: Mapping[str, str], hash: str) -> TaskUnit:
    """The unit of `task` at version `hash`."""
    minted = _credential_values(build.spec.project, task, secrets)
    return TaskUnit(
        name=task.name,
        hash=hash,
        handler=task.handler.ref,
        bundle=_bundle(build.tasks[task.name], build, hash),
        env={**task.env, **_grant_env(task.grants), **_credential_env(task)},
        grants=_grants(task.grants) + _credential_grants(task),
        secrets={**_secrets(task.grants, secrets), **minted},
        depends_on=_dependencies(task.depends_on, task.endpoint_env),
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
