"""`engine render`: what a target would be given, written to a folder, without contacting it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.backends import backend_module
from engine.backends.base import ProjectContext
from engine.compiler import compile_spec
from engine.load import check_spec
from engine.plan import make_plan
from engine.secrets import resolve_secrets
from engine.units import build_units

RENDERED_API_URL = "http://engine-control-plane"
"""The run API's address in rendered files: the real one is known only once deployed."""


def render_target(spec_path: Path, target: str, output: Path) -> list[Path]:
    """Render `spec_path` for `target` into `output`; return the files written, sorted.

    The plan is made against an empty state, so the files describe the whole project.
    """
    spec = check_spec(spec_path, target=target).spec
    build = compile_spec(spec)
    secrets = resolve_secrets(spec, os.environ)
    plan = make_plan(build, secrets, {}, {}, stable_endpoints=True)
    units = build_units(build, secrets, plan)
    chosen = spec.targets[target]
    context = ProjectContext(spec.project, spec.root, RENDERED_API_URL, "")
    module: Any = backend_module(chosen.backend)
    files: dict[str, bytes] = module.render(chosen, units, context)
    written = []
    for name, data in sorted(files.items()):
        path = output / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 0600: a Kubernetes Secret's manifest holds its values.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written.append(path)
    return written
