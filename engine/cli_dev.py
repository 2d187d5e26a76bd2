"""`engine dev`: apply, watch, re-apply on every change (a thin layer over engine.dev)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "spec",
    type=click.Path(dir_okay=False, path_type=Path),
    default="spec.yaml",
    required=False,
)
@click.option(
    "--target",
    default=None,
    metavar="NAME",
    help="Where the project runs: a target of the spec (default: $ENGINE_TARGET, else local).",
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds each app may take to pass its health check.",
)
def dev(spec: Path, target: str | None, timeout: float) -> None:
    """Apply SPEC, then re-apply it whenever a file it runs changes; show every app's log.

    Watches the spec, the handler modules and the project modules they import, `include:`
    files and static folders. Only what changed is restarted, and every app keeps its URL.
    A spec that stops validating prints its errors; the last good version keeps running.
    Each app's log lines are printed with its name in front (coloured on a terminal, not
    with NO_COLOR or when piped). Ctrl-C stops everything engine dev started and exits 130.
    """
    from engine.dev import run_dev

    run_dev(spec, target=target, health_timeout=timeout)
