"""What every `engine` command shares: where the spec is, durations, colour, and JSON errors."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
DEFAULT_SPEC = "spec.yaml"


def spec_options(func: F) -> F:
    """SPEC (a file, or a folder holding spec.yaml), `-f FILE` and `-C DIR`, passed to the
    command as one resolved `spec: Path`."""
    func = click.argument("spec", type=click.Path(path_type=Path), default=None, required=False)(
        func
    )
    func = click.option(
        "-f",
        "--file",
        "spec_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"The spec file (default: SPEC, else {DEFAULT_SPEC} in the project's folder).",
    )(func)
    return project_option(func)


def project_option(func: F) -> F:
    """`-C DIR`: the project's folder (default: found from the current folder upwards)."""
    return click.option(
        "-C",
        "directory",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="Run as if started in DIR (the project's folder).",
    )(func)


def resolve_spec(spec: Path | None, spec_file: Path | None, directory: Path | None) -> Path:
    """The spec file meant by SPEC, -f and -C: a folder means its spec.yaml."""
    base = directory or Path()
    if spec is not None and spec_file is not None:
        raise UsageError(f"give the spec once: as SPEC ({spec}) or with -f ({spec_file})")
    chosen = base / (spec_file or spec or DEFAULT_SPEC)
    return chosen / DEFAULT_SPEC if chosen.is_dir() else chosen  # a missing one: its reader says so


class Duration(click.ParamType):
    """Seconds, or a duration as the spec writes it: `90s`, `2m`, `1h`."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from engine.spec.units import parse_duration

        text = str(value).strip()
        try:
            return parse_duration(float(text) if _NUMBER.match(text) else text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()

TARGET_OPTION = click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Where the project runs: a target of the spec (default: $ENGINE_TARGET, else local).",
)

HEALTH_TIMEOUT_OPTION = click.option(
    "--timeout",
    type=DURATION,
    default="30s",
    show_default=True,
    help="How long each app may take to pass its health check (seconds, or e.g. 2m).",
)


def colour() -> bool:
    """Whether to colour output: on a terminal, unless NO_COLOR is set."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


STATE_COLOURS = {
    "running": "green",
    "succeeded": "green",
    "starting": "yellow",
    "queued": "yellow",
    "backoff": "yellow",
    "unhealthy": "red",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "magenta",
    "stopped": "bright_black",
}


def state_text(state: str, width: int = 0) -> str:
    """A state, padded to `width` and coloured by what it means (on a terminal only)."""
    text = state.ljust(width)
    fg = STATE_COLOURS.get(state)
    return click.style(text, fg=fg) if fg and colour() else text
