"""`engine dev`: apply, watch, re-apply on every change (a thin layer over engine.dev)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli_support import HEALTH_TIMEOUT_OPTION, TARGET_OPTION, resolve_spec, spec_options


@click.command()
@spec_options
@TARGET_OPTION
@HEALTH_TIMEOUT_OPTION
def dev(
    spec: Path | None,
    spec_file: Path | None,
    directory: Path | None,
    target: str | None,
    timeout: float,
) -> None:
    """Apply SPEC, then re-apply it whenever a file it runs changes; show every app's log.

    SPEC is a spec file, or a folder holding spec.yaml (default: spec.yaml). Watches the
    spec, the handler modules and the project modules they import, `include:` files and
    static folders. Only what changed is restarted, and every app keeps its URL. A spec
    that stops validating prints its errors; the last good version keeps running. Each
    app's log lines are printed with its name in front (coloured on a terminal, not with
    NO_COLOR or when piped). Ctrl-C stops everything engine dev started and exits 130.
    """
    from engine.dev import run_dev

    run_dev(resolve_spec(spec, spec_file, directory), target=target, health_timeout=timeout)
