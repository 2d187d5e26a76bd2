"""The `engine` command line: a thin layer over the Python API.

Every EngineError becomes a message and an exit code here, in one place; a user never sees
a traceback unless they ask for one with `--debug`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from engine import __version__
from engine.errors import EngineError, SpecError
from engine.resources import schema_path

SPEC_ARGUMENT = click.argument(
    "spec",
    type=click.Path(dir_okay=False, path_type=Path),
    default="spec.yaml",
    required=False,
)


class EngineGroup(click.Group):
    """Runs a command and turns engine's errors into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            for diagnostic in exc.diagnostics:
                click.echo(str(diagnostic), err=True)
            ctx.exit(1)
        except EngineError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=EngineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="engine")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Describe apps, webhooks, WebSockets and tasks in YAML; validate, build and run them.

    \b
    Start here:
      engine new quickstart myproject   scaffold a project from a blueprint
      engine validate spec.yaml         check a spec, with file:line:col for each problem
      engine apply spec.yaml            start everything, in dependency order
      engine status                     what runs and where
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@SPEC_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(spec: Path, as_json: bool) -> None:
    """Check SPEC against the schema and cross-references; exit 1 on any problem.

    Each problem is printed as `file:line:col: json.path: message`, all of them at once.
    """
    from engine.spec import check_spec

    try:
        checked = check_spec(spec)
    except SpecError as exc:
        if not as_json:
            raise
        _print_json({"valid": False, "errors": [d.to_dict() for d in exc.diagnostics]})
        sys.exit(1)
    if as_json:
        warnings = [d.to_dict() for d in checked.warnings]
        _print_json({"valid": True, "errors": [], "warnings": warnings})
        return
    for warning in checked.warnings:
        click.echo(f"{warning} (warning)", err=True)
    s = checked.spec
    click.echo(f"{spec}: valid ({_count(len(s.apps), 'app')}, {_count(len(s.tasks), 'task')})")


@main.command()
def schema() -> None:
    """Print the spec language's JSON Schema (for editors and other tools)."""
    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))
