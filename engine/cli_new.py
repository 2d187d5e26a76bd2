"""`engine new`: scaffold a project from a blueprint (a thin layer over engine.blueprints)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from engine.errors import EngineError, SpecError, UsageError


@click.command()
@click.argument("blueprint", required=False)
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A blueprint parameter, converted by its schema (port=8080 is a number); repeatable.",
)
@click.option(
    "--blueprints",
    "folders",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A folder of your own blueprints, overriding built-ins of the same name; repeatable.",
)
@click.option("--list", "show_list", is_flag=True, help="List the blueprints and their parameters.")
def new(
    blueprint: str | None,
    directory: Path | None,
    pairs: tuple[str, ...],
    folders: tuple[Path, ...],
    show_list: bool,
) -> None:
    """Create a project in DIRECTORY from a blueprint.

    For example, `engine new quickstart hello`.

    Required parameters are asked for on a terminal, or given with --set. DIRECTORY must
    be new or empty; nothing is written unless the generated spec validates. User
    blueprints come from --blueprints folders and ENGINE_BLUEPRINTS (os.pathsep-separated).
    """
    try:
        if show_list:
            _list(folders)
            return
        if blueprint is None or directory is None:
            raise UsageError("usage: engine new BLUEPRINT DIR [--set KEY=VALUE ...]; see --list")
        _new(blueprint, directory, pairs, folders)
    except SpecError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        sys.exit(1)
    except EngineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _list(folders: tuple[Path, ...]) -> None:
    from engine.blueprints import available

    found = available(folders)
    if not found:
        click.echo("No blueprints.")
        return
    width = max(len(name) for name in found)
    for name, item in found.items():
        origin = "" if item.builtin else f"  [{item.path.parent}]"
        summary = item.description.splitlines()[0] if item.description else ""
        click.echo(f"{name.ljust(width)}  {summary}{origin}")
        for line in _parameter_lines(item):
            click.echo(f"{''.ljust(width)}    {line}")


def _parameter_lines(blueprint: Any) -> list[str]:
    """`--set NAME=...` lines: each parameter's type, default (or required) and description."""
    lines = []
    for name, schema in blueprint.properties.items():
        kind = schema.get("type", "any")
        kind = "|".join(kind) if isinstance(kind, list) else kind
        if name in blueprint.required:
            given = "required"
        elif "default" in schema:
            given = f"default {json.dumps(schema['default'])}"
        else:
            given = "optional"
        description = schema.get("description", "")
        lines.append(f"--set {name}=<{kind}>  ({given}) {description}".rstrip())
    return lines


def _new(
    blueprint: str, directory: Path, pairs: tuple[str, ...], folders: tuple[Path, ...]
) -> None:
    from engine.blueprints import find_blueprint
    from engine.blueprints.scaffold import check_empty, project_name, render_project, write_project

    try:
        found = find_blueprint(blueprint, folders)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None
    check_empty(directory)
    given = _pairs(pairs)
    name = project_name(directory, given.pop("project", None))
    values = {key: _convert(found, key, text) for key, text in given.items()}
    _ask_missing(found, values)
    project = render_project(found, name, values, given)
    written = write_project(project, directory)
    _next_steps(project, directory, written)


def _pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r} is not KEY=VALUE")
        given[key] = value
    return given


def _convert(blueprint: Any, key: str, text: str) -> Any:
    from engine.blueprints.scaffold import convert

    return convert(blueprint, key, text)


def _ask_missing(blueprint: Any, values: dict[str, Any]) -> None:
    """Ask for each missing required parameter on a terminal; fail clearly without one."""
    missing = [name for name in blueprint.required if name not in values]
    if not missing:
        return
    if not sys.stdin.isatty():
        names = ", ".join(
            f"{n} ({blueprint.properties.get(n, {}).get('description', 'no description')})"
            for n in missing
        )
        sets = " ".join(f"--set {n}=VALUE" for n in missing)
        raise UsageError(
            f"blueprint {blueprint.name!r} needs: {names}; pass {sets} "
            "(there is no terminal to ask on)"
        )
    for name in missing:
        description = blueprint.properties.get(name, {}).get("description", "")
        label = f"{name} ({description})" if description else name
        text = click.prompt(label, type=str)
        values[name] = _convert(blueprint, name, text)


def _next_steps(project: Any, directory: Path, written: list[Path]) -> None:
    from engine.blueprints.scaffold import secret_variables

    source = project.blueprint.name
    click.echo(f"Created project {project.name!r} in {directory} from blueprint {source!r}:")
    for path in sorted(written):
        click.echo(f"  {path}")
    click.echo("\nNext:")
    for secret, variable in secret_variables(project).items():
        click.echo(f"  export {variable}=...        # the value of secret {secret!r}")
    click.echo(f"  cd {directory} && engine apply")
    click.echo("  engine status                # each app's URL")
    if project.notes:
        click.echo("")
        for line in project.notes.splitlines():
            click.echo(f"  {line}" if line else "")
