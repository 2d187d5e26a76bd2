"""Open what a control plane's target runs on: its backend (local, or a cluster's by
name), its task executor and its run store (SQLite, or a shared PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.backends import backend_module
from engine.backends.base import Backend, ProjectContext, TaskExecutor
from engine.backends.local.backend import LocalBackend
from engine.backends.local.environment import base_environment
from engine.backends.local.tasks import LocalTaskExecutor
from engine.errors import UsageError
from engine.layout import LOCAL, MARKER_VARIABLE, Layout
from engine.runs.store import RunStore, open_store
from engine.spec.model import Spec, Target
from engine.state import State


@dataclass(frozen=True)
class Opened:
    """What a control plane carries its target out with."""

    backend: Backend
    executor: TaskExecutor
    store: RunStore


def open_target(
    layout: Layout,
    state: State,
    context: ProjectContext,
    spec_path: Path | None,
    environ: Mapping[str, str] = os.environ,
) -> Opened:
    """The backend, task executor and run store of `layout.target`.

    The target is read from its spec (`spec_path`, or the one last applied), with the
    secrets it names (a cluster token, the run store's password) from `environ`. The
    local target needs no spec: without one its runs are in SQLite under `.engine/`.
    """
    spec = _spec(layout, spec_path, environ)
    target = spec.targets[layout.target] if spec else None
    needed = _named_secrets(spec, target, environ) if spec and target else {}
    url = target.run_store if target else ""
    password = needed.get(target.run_store_password or "") if target else None
    store = open_store(url, layout.dir / "runs.db", password)
    if spec is None or target is None or target.backend == LOCAL:
        backend = LocalBackend(context, layout, state, base_environment(environ))
        return Opened(backend, local_task_executor(layout, context, environ), store)
    # A cluster names the project's apps after it: the spec's name, from the first start
    # (before the first apply the control plane knows only the folder's name).
    context = replace(context, project=spec.project)
    module: Any = backend_module(target.backend)
    backend, executor = module.create(target, context, layout.dir, needed)
    return Opened(backend, executor or local_task_executor(layout, context, environ), store)


def _spec(layout: Layout, spec_path: Path | None, environ: Mapping[str, str]) -> Spec | None:
    """The spec, checked for the target (None: the local target before any apply)."""
    if spec_path is None:
        if layout.target == LOCAL:
            return None
        raise UsageError(
            f"target {layout.target!r} has not been applied yet; "
            f"run `engine apply SPEC --target {layout.target}` first"
        )
    from engine.load import check_spec

    return check_spec(spec_path, environ, target=layout.target).spec


def _named_secrets(spec: Spec, target: Target, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the secrets the target itself names (not the apps' and tasks')."""
    from engine.secrets import resolve_secrets

    names = {n for n in (target.token, target.run_store_password) if n}
    if not names:
        return {}
    return resolve_secrets(
        replace(spec, secrets={n: s for n, s in spec.secrets.items() if n in names}), environ
    )


def local_task_executor(
    layout: Layout, context: ProjectContext, environ: Mapping[str, str]
) -> LocalTaskExecutor:
    """Task runs in worker processes on this machine, marked as the project's."""
    base = {**base_environment(environ), MARKER_VARIABLE: layout.marker}
    return LocalTaskExecutor(context, base, layout.run_logs, layout.secret_files)
