"""Finding blueprints: the built-in folder, the user's folders, and each one's manifest.

A blueprint is a folder holding `blueprint.yaml` (name, description, parameters as a JSON
Schema object), `spec.yaml.j2` (a Jinja2 template of a spec fragment) and optionally
`files/` (handler files, `.j2` ones rendered). User folders come from `--blueprints DIR`
or `ENGINE_BLUEPRINTS` (os.pathsep-separated) and override built-ins of the same name.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from engine.errors import Diagnostic, SpecError
from engine.resources import blueprints_dir
from engine.spec.loader import Document, load_file

MANIFEST = "blueprint.yaml"
TEMPLATE = "spec.yaml.j2"
FILES = "files"
ENV_VAR = "ENGINE_BLUEPRINTS"
RESERVED = ("codegen",)  # the code-generation templates share the built-in folder
PARAMETER_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
CONTEXT_NAMES = ("project", "prefix")  # given to every template; not parameters

_MANIFEST_KEYS = ("name", "description", "parameters", "notes")


@dataclass(frozen=True)
class Blueprint:
    """A blueprint found on disk, its manifest read and checked."""

    name: str
    description: str
    path: Path
    parameters: dict[str, Any]
    notes: str
    builtin: bool

    @property
    def template(self) -> Path:
        """The spec fragment's template."""
        return self.path / TEMPLATE

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """Parameter name -> its JSON Schema."""
        return self.parameters.get("properties", {})

    @property
    def required(self) -> list[str]:
        """Names of the parameters without which the blueprint cannot render."""
        return list(self.parameters.get("required", []))


def search_path(
    extra: Iterable[Path] = (), environ: Mapping[str, str] | None = None
) -> list[tuple[Path, bool]]:
    """The folders searched, lowest priority first: built-ins, ENGINE_BLUEPRINTS, `extra`."""
    environ = os.environ if environ is None else environ
    folders = [(blueprints_dir(), True)]
    for part in environ.get(ENV_VAR, "").split(os.pathsep):
        if part:
            folders.append((Path(part), False))
    folders += [(Path(p), False) for p in extra]
    return folders


def _candidates(folders: list[tuple[Path, bool]]) -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for folder, builtin in folders:
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if builtin and child.name in RESERVED:
                continue
            if (child / MANIFEST).is_file():
                found[child.name] = (child, builtin)
    return found


def available(
    extra: Iterable[Path] = (), environ: Mapping[str, str] | None = None
) -> dict[str, Blueprint]:
    """Every blueprint by name, sorted; a user's folder overrides a built-in one."""
    found = _candidates(search_path(extra, environ))
    return {name: read_blueprint(*found[name]) for name in sorted(found)}


def find_blueprint(
    name: str, extra: Iterable[Path] = (), environ: Mapping[str, str] | None = None
) -> Blueprint:
    """The blueprint called `name`; LookupError (with a did-you-mean) if there is none."""
    found = _candidates(search_path(extra, environ))
    if name not in found:
        raise LookupError(unknown_message(name, sorted(found)))
    return read_blueprint(*found[name])


def unknown_message(name: str, known: list[str]) -> str:
    """`unknown blueprint 'quickstrat'; did you mean 'quickstart'?` and where to look."""
    message = f"unknown blueprint {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; known: {', '.join(known) or 'none'} (see `engine new --list`)"


def read_blueprint(path: Path, builtin: bool = False) -> Blueprint:
    """Read and check `path/blueprint.yaml`; SpecError positioned in it when it is wrong."""
    doc = load_file(path / MANIFEST)
    errors = _manifest_errors(doc, path)
    if errors:
        raise SpecError(errors)
    data = doc.data
    parameters = dict(data.get("parameters") or {"type": "object", "properties": {}})
    return Blueprint(
        name=data["name"],
        description=str(data.get("description", "")).strip(),
        path=path,
        parameters=parameters,
        notes=str(data.get("notes", "")).strip(),
        builtin=builtin,
    )


def _manifest_errors(doc: Document, path: Path) -> list[Diagnostic]:
    data = doc.data
    errors = [
        doc.diagnostic((key,), f"unknown key {key!r}; a manifest has {', '.join(_MANIFEST_KEYS)}")
        for key in data
        if key not in _MANIFEST_KEYS and not key.startswith("x-")
    ]
    if data.get("name") != path.name:
        message = f"name must be the folder's name, {path.name!r}"
        errors.append(doc.diagnostic(("name",), message))
    if not (path / TEMPLATE).is_file():
        errors.append(doc.diagnostic((), f"the blueprint has no {TEMPLATE} beside its manifest"))
    parameters = data.get("parameters")
    if parameters is not None:
        errors += _parameter_errors(doc, parameters)
    return errors


def _parameter_errors(doc: Document, parameters: Any) -> list[Diagnostic]:
    where = ("parameters",)
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        return [doc.diagnostic(where, "parameters must be a JSON Schema of type object")]
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        at = (*where, *exc.absolute_path)
        return [doc.diagnostic(at, f"not a valid JSON Schema: {exc.message}")]
    errors = []
    for name in parameters.get("properties", {}):
        at = (*where, "properties", name)
        if not PARAMETER_NAME.match(name):
            message = f"parameter {name!r} must be lower-case letters, digits and '_'"
            errors.append(doc.diagnostic(at, message, key=True))
        elif name in CONTEXT_NAMES:
            message = f"{name!r} is given to every template already; choose another name"
            errors.append(doc.diagnostic(at, message, key=True))
    return errors
