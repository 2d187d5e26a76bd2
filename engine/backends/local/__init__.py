"""The local backend: apps as supervised processes on this machine, runs in worker pools."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import Diagnostic, UsageError

if TYPE_CHECKING:  # kept out of the import: every task worker imports this package
    from engine.backends.base import Locate
    from engine.spec.model import Spec, Target
    from engine.units import Units


def check(target: Target, spec: Spec, locate: Locate) -> list[Diagnostic]:
    """This machine runs everything a valid spec describes."""
    return []


def render(target: Target, units: Units, context: object) -> dict[str, bytes]:
    """Nothing to render: the local backend runs the generated modules in place."""
    raise UsageError(
        f"target {target.name!r} runs on this machine, so there is nothing to render; "
        "use `engine build SPEC` to see the generated modules"
    )
