"""Open the backend of a control plane's target: the local one, or a cluster's by name."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.backends import backend_module
from engine.backends.base import Backend, ProjectContext, TaskExecutor
from engine.backends.local.backend import LocalBackend
from engine.backends.local.environment import base_environment
from engine.backends.local.tasks import LocalTaskExecutor
from engine.errors import UsageError
from engine.layout import LOCAL, MARKER_VARIABLE, Layout
from engine.state import State


def open_backend(
    layout: Layout,
    state: State,
    context: ProjectContext,
    spec_path: Path | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[Backend, TaskExecutor]:
    """The backend of `layout.target`, and its task executor (the local one when the
    backend brings none).

    A cluster target is read from its spec (`spec_path`, or the one last applied), with
    the secrets it names (a cluster token), from `environ`.
    """
    if layout.target == LOCAL:
        backend = LocalBackend(context, layout, state, base_environment(environ))
        return backend, local_task_executor(layout, context, environ)
    from engine.load import check_spec
    from engine.secrets import resolve_secrets

    if spec_path is None:
        raise UsageError(
            f"target {layout.target!r} has not been applied yet; "
            f"run `engine apply SPEC --target {layout.target}` first"
        )
    spec = check_spec(spec_path, environ, target=layout.target).spec
    target = spec.targets[layout.target]
    # A cluster names the project's apps after it: the spec's name, from the first start.
    context = dataclasses.replace(context, project=spec.project)
    module: Any = backend_module(target.backend)
    backend, executor = module.create(target, context, layout.dir, resolve_secrets(spec, environ))
    return backend, executor or local_task_executor(layout, context, environ)


def local_task_executor(
    layout: Layout, context: ProjectContext, environ: Mapping[str, str]
) -> LocalTaskExecutor:
    """Task runs in worker processes on this machine, marked as the project's."""
    base = {**base_environment(environ), MARKER_VARIABLE: layout.marker}
    return LocalTaskExecutor(context, base, layout.run_logs, layout.secret_files)
