"""The local backend: apps as supervised processes on this machine, runs in worker pools.

Everything that starts, recognises or signals a process lives in this package; the rest
of engine uses these few functions for the control plane's own process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.local import procs
from engine.errors import Diagnostic, UsageError
from engine.layout import MARKER_VARIABLE, Layout

if TYPE_CHECKING:  # kept out of the CLI's imports: every command loads this package
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


def start_detached(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path
) -> procs.ProcessHandle:
    """Start a long-lived process (the control plane) in its own session, its output
    appended to `log`."""
    return procs.spawn(argv, env, cwd, log)


def is_alive(pid: int | None, start_time: int | None) -> bool:
    """Whether the process `pid`, started at `start_time`, still runs (a reused pid is not)."""
    return procs.is_ours(pid, start_time)


def start_time(pid: int) -> int | None:
    """The start time of process `pid`, as `is_alive` compares it."""
    return procs.process_start_time(pid)


def find_marked(layout: Layout) -> list[int]:
    """The pids of the processes that carry the project's marker (see `Layout.marker`)."""
    return [pid for pid, _ in procs.marked(MARKER_VARIABLE, layout.marker)]


def stop_marked(layout: Layout) -> int:
    """End every process that carries the project's marker (see `Layout.marker`), found
    without the state; return how many there were."""
    return procs.terminate_marked(MARKER_VARIABLE, layout.marker)
