"""Checks that read the project's folder: what a static folder holds, where handlers live.

Nothing here imports user code: a handler's module is found by looking for its file.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic
from engine.spec.loader import Document, JsonPath

__all__ = ["project_file_errors"]


def project_file_errors(doc: Document, folder: Path) -> list[Diagnostic]:
    """Errors for static folders that hold private files and handlers outside the project.

    `folder` is the spec's folder (the project's root). `doc` is schema-valid.
    """
    data: dict[str, Any] = doc.data
    root = folder.resolve()
    errors = [doc.diagnostic(path, message) for path, message in _static_problems(data, root)]
    elsewhere = _outside_path(root)
    problems: dict[str, str | None] = {}  # specs name the same handlers over and over
    for path, ref in _handler_refs(data):
        if ref not in problems:
            problems[ref] = _handler_problem(ref, root, elsewhere)
        problem = problems[ref]
        if problem:
            errors.append(doc.diagnostic(path, problem))
    return errors


# static folders ---------------------------------------------------------------------------


def _static_problems(data: dict[str, Any], root: Path) -> Iterator[tuple[JsonPath, str]]:
    secrets = {
        name: Path(source.get("file") or source["env_file"])
        for name, source in (data.get("secrets") or {}).items()
        if isinstance(source, dict) and (source.get("file") or source.get("env_file"))
    }
    for name, app in (data.get("apps") or {}).items():
        static = app.get("static")
        if not static:
            continue
        served = (root / static["dir"]).resolve()
        held = []
        if _inside(root, served):
            held = [".engine/ (the control plane's token and the run store)", "the spec"]
        elif _inside(served, root / ".engine"):
            held = ["engine's own files (it is inside .engine/)"]
        held += [
            f"the file of secret {secret!r} ({source})"
            for secret, source in secrets.items()
            if _inside((root / source).resolve(), served)
        ]
        if held:
            yield (
                ("apps", name, "static", "dir"),
                f"static folder {static['dir']!r} holds {', '.join(held)}, which must never be "
                "served; put the public files in a folder of their own, e.g. dir: web/",
            )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# handlers ---------------------------------------------------------------------------------


def _handler_refs(data: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    for name, app in (data.get("apps") or {}).items():
        for i, route in enumerate(app.get("routes", [])):
            if "handler" in route:
                yield ("apps", name, "routes", i, "handler"), route["handler"]
        for i, socket in enumerate(app.get("websockets", [])):
            for key in ("handler", "source"):
                if key in socket:
                    yield ("apps", name, "websockets", i, key), socket[key]
    for name, task in (data.get("tasks") or {}).items():
        yield ("tasks", name, "handler"), task["handler"]


def _outside_path(root: Path) -> list[str]:
    """Where Python finds modules other than the project's: stdlib and installed packages."""
    here = {"", os.getcwd(), str(root)}
    return [entry for entry in sys.path if entry not in here]


def _handler_problem(ref: str, root: Path, elsewhere: list[str]) -> str | None:
    """Why `module:function` is not a handler of this project, or None.

    The module's top-level name must not be one Python finds outside the project: a
    project file of that name would not be the one imported (the standard library and
    installed packages are found first, or are already imported), and a name only found
    outside is not the project's code (`os:system`). A module found nowhere is left to
    the build, which reports it when it imports the handler.
    """
    module = ref.partition(":")[0]
    top = module.split(".")[0]
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        origin = "Python's standard library"
    else:
        found = importlib.machinery.PathFinder.find_spec(top, elsewhere)
        if found is None:
            return None
        origin = f"an installed package ({found.origin or top})"
    in_project = (root / f"{top}.py").is_file() or (root / top).is_dir()
    advice = "rename your module" if in_project else "write the handler in a module beside the spec"
    return (
        f"handler {ref!r}: module {top!r} is {origin}, not a module of this project; a "
        f"handler must be a module in the spec's folder: {advice} (e.g. handlers.py)"
    )
