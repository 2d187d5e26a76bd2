"""The front of the pipeline: load a spec with positions, expand its blueprints, interpolate
`${VAR}`, validate it against the schema and cross-check it, and build the typed model.

`load_spec(path)` returns a Spec or raises SpecError listing every problem at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.blueprints import expand
from engine.errors import Diagnostic, SpecError, UsageError
from engine.gcpause import gc_paused
from engine.spec.build import build_spec
from engine.spec.checks import cross_check
from engine.spec.interpolate import interpolate
from engine.spec.loader import load_file
from engine.spec.model import Spec
from engine.spec.project_files import project_file_errors

if TYPE_CHECKING:
    from engine.backends.base import Locate
from engine.spec.schema import schema_errors


@dataclass(frozen=True)
class Checked:
    """A valid spec and the warnings found on the way."""

    spec: Spec
    warnings: list[Diagnostic]


def check_spec(
    path: Path,
    environ: Mapping[str, str] | None = None,
    label: str | None = None,
    target: str | None = None,
) -> Checked:
    """Load and validate the spec at `path`; raise SpecError listing every problem at once.

    Diagnostics name the file as `label`, by default the path as given. With `target`, also
    what that target's backend cannot run.
    """
    with gc_paused():
        return _check(Path(path), os.environ if environ is None else environ, label, target)


def _check(
    path: Path, environ: Mapping[str, str], label: str | None, target: str | None
) -> Checked:
    label = label or str(path)
    path = Path(path).resolve()
    doc = load_file(path, label)
    errors = expand(doc)
    errors += interpolate(doc, environ)
    if errors:
        raise SpecError(errors)
    errors = schema_errors(doc)
    if errors:
        raise SpecError(errors)
    errors, warnings = cross_check(doc)
    errors += project_file_errors(doc, path.parent)
    if errors:
        raise SpecError(errors)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = build_spec(doc, path, sha256)
    if target is not None:
        errors = _target_errors(spec, target, doc.diagnostic)
        if errors:
            raise SpecError(errors)
    return Checked(spec, sorted(warnings))


def _target_errors(spec: Spec, name: str, locate: Locate) -> list[Diagnostic]:
    """What target `name` cannot run in `spec`; UsageError if the spec has no such target."""
    from engine.backends import backend_module

    found = spec.targets.get(name)
    if found is None:
        known = ", ".join(sorted(spec.targets))
        raise UsageError(f"{spec.path.name} has no target {name!r}; its targets are: {known}")
    errors: list[Diagnostic] = backend_module(found.backend).check(found, spec, locate)
    return errors


def load_spec(path: Path, environ: Mapping[str, str] | None = None) -> Spec:
    """The validated Spec at `path`, or SpecError."""
    return check_spec(path, environ).spec
