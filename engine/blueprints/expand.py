"""Expanding a spec's `uses:` entries in place, before interpolation and validation.

Each entry renders its blueprint with the checked `with:` parameters, loads the rendered
fragment as YAML (positions refer to the rendered text, named after the blueprint's
`spec.yaml.j2`), checks it against the schema, prefixes the names it creates (and the
references to them inside the fragment), and merges its `secrets`, `tasks` and `apps`
into the spec's maps. Expansion has no side effects: a blueprint's handler files are
written only by `engine new`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.blueprints.catalog import Blueprint, find_blueprint
from engine.blueprints.prefix import KINDS, prefix_fragment
from engine.blueprints.render import check_parameters, render_spec
from engine.errors import Diagnostic, SpecError
from engine.spec.loader import Document, JsonPath, Mark, load_text

_FRAGMENT_KEYS = (*KINDS,)
_VARIABLE = re.compile(r"\$\{[A-Za-z_]")


def expand(doc: Document, extra: Iterable[Path] = ()) -> list[Diagnostic]:
    """Replace the spec's `uses:` with what its blueprints create; return the problems.

    After this, `doc.data` holds no `uses` key, and every merged value is positioned at
    the `uses:` entry that produced it.
    """
    if not isinstance(doc.data, dict) or "uses" not in doc.data:
        return []
    uses = doc.data.pop("uses")
    if not isinstance(uses, list):
        return [doc.diagnostic(("uses",), "uses must be a list of {blueprint, with, prefix}")]
    owners = {
        (kind, name): f"the spec itself (line {doc.mark((kind, name), key=True).line})"
        for kind in KINDS
        if isinstance(doc.data.get(kind), dict)
        for name in doc.data[kind]
    }
    errors: list[Diagnostic] = []
    for index, entry in enumerate(uses):
        try:
            fragment, blueprint = _expand_one(doc, index, entry, list(extra))
        except SpecError as exc:
            errors += exc.diagnostics
            continue
        errors += _merge(doc, index, blueprint, fragment, owners)
    return errors


def _expand_one(
    doc: Document, index: int, entry: Any, extra: list[Path]
) -> tuple[dict[str, Any], Blueprint]:
    where: JsonPath = ("uses", index)
    if not isinstance(entry, dict) or not isinstance(entry.get("blueprint"), str):
        raise SpecError([doc.diagnostic(where, "each uses entry needs blueprint: NAME")])
    try:
        blueprint = find_blueprint(entry["blueprint"], extra)
    except LookupError as exc:
        raise SpecError([doc.diagnostic((*where, "blueprint"), str(exc.args[0]))]) from None
    values = entry.get("with") or {}
    if not isinstance(values, dict):
        raise SpecError([doc.diagnostic((*where, "with"), "with must be a mapping")])
    params, problems = check_parameters(blueprint, values)
    if problems:
        raise SpecError(
            [
                doc.diagnostic(_with_path(where, entry, p.path), p.message, key=p.key)
                for p in problems
            ]
        )
    suffix = f" (from blueprint {blueprint.name!r} used at {_at(doc, where)})"
    prefix = entry.get("prefix") if isinstance(entry.get("prefix"), str) else ""
    context = {**params, "project": doc.data.get("project"), "prefix": prefix}
    try:
        text = render_spec(blueprint, context)
        fragment = load_text(text, str(blueprint.template))
    except SpecError as exc:
        raise SpecError(_suffixed(exc.diagnostics, suffix)) from None
    errors = _fragment_errors(fragment, checkable=not _VARIABLE.search(text))
    if errors:
        raise SpecError(_suffixed(errors, suffix))
    data = prefix_fragment(fragment.data, prefix) if prefix else fragment.data
    return data, blueprint


def _with_path(where: JsonPath, entry: dict, path: tuple) -> JsonPath:
    """Where a parameter problem is shown: the value in `with:`, or `with:` itself."""
    if "with" not in entry:
        return where
    return (*where, "with", *path)


def _at(doc: Document, path: JsonPath) -> str:
    mark = doc.mark(path)
    return f"{Path(doc.file).name}:{mark.line}"


def _suffixed(diagnostics: list[Diagnostic], suffix: str) -> list[Diagnostic]:
    return [Diagnostic(d.file, d.line, d.col, d.path, d.message + suffix) for d in diagnostics]


def _fragment_errors(fragment: Document, checkable: bool) -> list[Diagnostic]:
    """Keys a fragment may not hold, and the schema's complaints about what it holds."""
    from engine.spec.schema import schema_errors

    errors = [
        fragment.diagnostic(
            (key,), f"a blueprint's fragment holds only {', '.join(KINDS)}", key=True
        )
        for key in fragment.data
        if key not in _FRAGMENT_KEYS and not key.startswith("x-")
    ]
    if errors or not checkable:
        # A `${VAR}` is interpolated later, over the whole spec: judge such a fragment then.
        return errors
    whole = Document(
        file=fragment.file,
        data={"version": 1, "project": "blueprint", **copy.deepcopy(fragment.data)},
        values=fragment.values,
        keys=fragment.keys,
        scalars=fragment.scalars,
    )
    return schema_errors(whole)


def _merge(
    doc: Document,
    index: int,
    blueprint: Blueprint,
    fragment: dict[str, Any],
    owners: dict[tuple[str, str], str],
) -> list[Diagnostic]:
    where: JsonPath = ("uses", index)
    me = f"uses[{index}] (blueprint {blueprint.name!r})"
    mark = doc.mark(where)
    errors: list[Diagnostic] = []
    for kind in KINDS:
        items = fragment.get(kind) or {}
        if not items:
            continue
        target = doc.data.setdefault(kind, {})
        if not isinstance(target, dict):
            errors.append(doc.diagnostic((kind,), f"{kind} must be a mapping"))
            continue
        for name, value in items.items():
            other = owners.get((kind, name))
            if other is not None:
                message = (
                    f"{me} creates {kind[:-1]} {name!r}, which {other} already has; "
                    "rename one, or give the blueprint a different `prefix:`"
                )
                errors.append(doc.diagnostic(where, message))
                continue
            owners[(kind, name)] = f"{me} at line {mark.line}"
            target[name] = value
            _position(doc, (kind, name), value, mark)
    return errors


def _position(doc: Document, path: JsonPath, value: Any, mark: Mark) -> None:
    """Point every merged key and value at the `uses:` entry that produced it."""
    doc.values[path] = mark
    doc.keys[path] = mark
    if isinstance(value, dict):
        for key, child in value.items():
            _position(doc, (*path, key), child, mark)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _position(doc, (*path, i), child, mark)
