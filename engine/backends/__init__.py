"""Backends: where a project's apps and task runs are carried out, chosen by a target's name.

Each backend is a package `engine.backends.<name>` that exposes three functions:

    create(target, context, state_dir, secrets) -> (Backend, TaskExecutor)
        cheap: no network call and no process started until the first method call
    render(target, units, context) -> {relative file name: bytes}
        what the target would be given, deterministic, without contacting it
    check(target, spec, locate) -> [Diagnostic]
        what this target cannot run in the spec; `locate(json_path, message)` positions one

The local backend is always there; the others are optional extras (`engine[ray]`,
`engine[kubernetes]`), imported only when a target names them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from engine.errors import UsageError

EXTRAS = {"ray": "ray", "kubernetes": "kubernetes"}
"""Backend name -> the pip extra that brings what it needs."""


def backend_module(name: str) -> ModuleType:
    """The package of backend `name`; a missing extra is a UsageError naming the install."""
    try:
        return importlib.import_module(f"engine.backends.{name}")
    except ImportError as exc:
        extra = EXTRAS.get(name)
        if extra is None or exc.name is None or exc.name.startswith("engine."):
            raise
        raise UsageError(
            f"the {name} backend needs packages that are not installed ({exc.name}); "
            f"install them with: pip install 'engine[{extra}]'"
        ) from exc
