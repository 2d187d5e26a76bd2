"""The Kubernetes backend: apps as Deployments behind Services, task attempts as Jobs.

    render(target, units, context)  the manifests, offline and deterministic (render.py)
    create(target, context, ...)    a KubernetesBackend and a JobExecutor (cluster.py, jobs.py)
    check(target, spec, locate)     what a cluster cannot run from this spec

Importing this package imports neither the `kubernetes` client nor anything that talks to
a cluster: `render` and `check` work without the extra, and the task entry that runs in
every Job's pod (`python -m engine.backends.kubernetes.task`) stays light.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends.base import Locate, ProjectContext
from engine.errors import Diagnostic, UsageError
from engine.spec.model import Spec, Target

if TYPE_CHECKING:
    from engine.backends.kubernetes.cluster import KubernetesBackend
    from engine.backends.kubernetes.jobs import JobExecutor
    from engine.units import Units


def check(target: Target, spec: Spec, locate: Locate) -> list[Diagnostic]:
    """A `command:` app runs in the target's image, in a folder holding only its `include:`
    files: with the stock runtime image and no `include:`, nothing it runs reaches the pod."""
    problems = []
    for name, app in sorted(spec.apps.items()):
        if app.command is not None and not app.include and target.image is None:
            problems.append(
                locate(
                    ("apps", name, "command"),
                    f"app {name!r} runs its own command, but on target {target.name!r} no file "
                    "of it reaches the pod: list the files it runs under `include:` (e.g. "
                    "include: [server.py]), or set the target's `image:` to an image that "
                    "has the command",
                )
            )
    return problems


def render(target: Target, units: Units, context: ProjectContext) -> dict[str, bytes]:
    """The manifests of every app and task, as {file name: YAML bytes}."""
    from engine.backends.kubernetes.manifests import render_files

    return render_files(target, units.apps, units.tasks, context)


def create(
    target: Target, context: ProjectContext, state_dir: Path, secrets: Any = None
) -> tuple[KubernetesBackend, JobExecutor]:
    """The backend and task executor of `target`; no cluster is contacted until first use."""
    if importlib.util.find_spec("kubernetes") is None:
        raise UsageError(
            f"target {target.name!r} needs the Kubernetes client, which is not installed; "
            "install it with: pip install 'engine[kubernetes]'"
        )
    from engine.backends.kubernetes.api import Cluster
    from engine.backends.kubernetes.cluster import KubernetesBackend
    from engine.backends.kubernetes.jobs import JobExecutor
    from engine.backends.kubernetes.manifests import Site

    site = Site.of(target, context)
    cluster = Cluster(site.namespace, target.context)
    return KubernetesBackend(cluster, site, context), JobExecutor(cluster, site, context)
