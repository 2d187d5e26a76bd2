"""Creating a whole project from a blueprint: the Python API behind `engine new`.

Everything is rendered and validated in a temporary folder first; the target folder is
created (by one rename) only once the generated spec is valid, so a failed `engine new`
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.blueprints.catalog import Blueprint
from engine.blueprints.render import (
    Problem,
    check_parameters,
    environment,
    render_files,
    render_spec,
)
from engine.errors import Diagnostic, SpecError, UsageError

SPEC_FILE = "spec.yaml"
GITIGNORE = ".gitignore"
IGNORED = ".engine/\n"
"""What a new project's `.gitignore` holds: the engine's state, logs and builds."""
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$")


@dataclass(frozen=True)
class Project:
    """A project rendered from a blueprint, not yet written anywhere."""

    blueprint: Blueprint
    name: str
    parameters: dict[str, Any]
    files: dict[str, bytes]
    notes: str


def convert(blueprint: Blueprint, key: str, text: str) -> Any:
    """A `--set key=text` value, converted by the parameter's schema (`8080` -> 8080)."""
    schema = blueprint.properties.get(key, {})
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kinds == ["string"]:
        return text
    try:
        return json.loads(text)
    except ValueError:
        if kind is None or "string" in kinds:
            return text
        raise UsageError(f"--set {key}={text}: expected {' or '.join(map(str, kinds))}") from None


def project_name(directory: Path, given: str | None) -> str:
    """The project's name: `given`, or the folder's name; UsageError if it is not a DNS label."""
    name = given if given is not None else directory.resolve().name
    if not PROJECT_NAME.match(name):
        source = "--set project" if given is not None else f"the folder name {name!r}"
        raise UsageError(
            f"{source} is not a valid project name (lower-case letters, digits and '-', "
            "starting with a letter); pass --set project=NAME"
        )
    return name


def check_empty(directory: Path) -> None:
    """UsageError unless `directory` is missing or an empty folder."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        raise UsageError(
            f"{directory} is not empty; choose a new folder (engine new never overwrites)"
        )


def parameter_errors(problems: list[Problem], given: Mapping[str, str]) -> UsageError:
    """One UsageError naming each bad parameter as it was given (`--set port=abc: ...`)."""
    lines = []
    for problem in problems:
        name = str(problem.path[0]) if problem.path else ""
        where = f"--set {name}={given[name]}: " if name in given else ""
        lines.append(f"{where}{problem.message}")
    return UsageError("\n".join(lines))


def render_project(
    blueprint: Blueprint, name: str, values: Mapping[str, Any], given: Mapping[str, str]
) -> Project:
    """Check the parameters and render the spec and the files, in memory."""
    parameters, problems = check_parameters(blueprint, values)
    if problems:
        raise parameter_errors(problems, given)
    context = {**parameters, "project": name, "prefix": ""}
    fragment = render_spec(blueprint, context)
    files = render_files(blueprint, context)
    if SPEC_FILE in files:
        message = f"files/{SPEC_FILE} would overwrite the generated spec; remove it"
        raise SpecError([Diagnostic(str(blueprint.path), 1, 1, "$", message)])
    files = {SPEC_FILE: _spec_text(blueprint, name, parameters, fragment).encode(), **files}
    files.setdefault(GITIGNORE, IGNORED.encode())
    notes = render_notes(blueprint, context)
    return Project(blueprint, name, parameters, files, notes)


def render_notes(blueprint: Blueprint, context: Mapping[str, Any]) -> str:
    """The manifest's `notes:`, rendered with the parameters (it may use them too)."""
    if not blueprint.notes:
        return ""
    return environment(blueprint).from_string(blueprint.notes).render(**context).strip()


def _spec_text(blueprint: Blueprint, name: str, parameters: dict[str, Any], fragment: str) -> str:
    sets = " ".join(
        f"--set {k}={v if isinstance(v, str) else json.dumps(v)}"
        for k, v in sorted(parameters.items())
    )
    header = [
        modeline(),
        f"# Created by: engine new {blueprint.name} DIR {sets}".rstrip(),
        f"# {blueprint.description}" if blueprint.description else "#",
        "version: 1",
        f"project: {name}",
        "",
    ]
    return "\n".join(header) + "\n" + fragment.lstrip("\n")


def modeline() -> str:
    """The comment that points the YAML language server at the installed schema."""
    from engine.resources import schema_path

    return f"# yaml-language-server: $schema={schema_path().resolve()}"


def write_project(project: Project, directory: Path) -> list[Path]:
    """Write `project` to `directory` once its spec validates; return the files written."""
    from engine.load import check_spec

    check_empty(directory)
    with tempfile.TemporaryDirectory(prefix="engine-new-") as scratch:
        staging = Path(scratch) / "project"
        _write_files(staging, project.files)
        try:
            check_spec(staging / SPEC_FILE, environ={})
        except SpecError as exc:
            raise SpecError(_relocated(exc.diagnostics, staging, directory)) from None
        directory.parent.mkdir(parents=True, exist_ok=True)
        beside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            shutil.copytree(staging, beside, dirs_exist_ok=True)
            if directory.is_dir():
                directory.rmdir()  # empty, checked above; rename needs it gone
            os.rename(beside, directory)
        except BaseException:
            shutil.rmtree(beside, ignore_errors=True)
            raise
    return [directory / relative for relative in project.files]


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _relocated(diagnostics: list[Diagnostic], staging: Path, directory: Path) -> list[Diagnostic]:
    """Diagnostics of the staged spec, naming the folder the user asked for."""
    prefix = str(staging)
    return [
        Diagnostic(d.file.replace(prefix, str(directory), 1), d.line, d.col, d.path, d.message)
        for d in diagnostics
    ]


def secret_variables(project: Project) -> dict[str, str]:
    """Secret name -> the environment variable it is read from, for the next steps."""
    import yaml

    data = yaml.safe_load(project.files[SPEC_FILE]) or {}
    return {
        name: source["env"]
        for name, source in sorted((data.get("secrets") or {}).items())
        if isinstance(source, dict) and "env" in source
    }
