"""Compile a Spec into one generated FastAPI module per app, deterministically.

build = compile_spec(spec)            # render and check, in memory
write_build(build, spec.root / ".engine" / "build")
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2

from engine.compiler.model import build_module
from engine.compiler.sources import Sources
from engine.errors import EngineError
from engine.gcpause import gc_paused
from engine.layout import private_dir
from engine.resources import blueprints_dir
from engine.spec.model import App, Spec, Task

MODULE_NAME = "_engine_app"
TEMPLATE = "app.py.j2"


class CompileError(EngineError):
    """Raised when a template renders code that does not parse (a broken user override)."""


@dataclass(frozen=True)
class Artifact:
    """One app's or task's compiled form: its module (None for tasks and command apps)
    and the hash of everything it runs except secrets and endpoints (added at plan time)."""

    name: str
    kind: str
    source: str | None
    content_hash: str
    files: tuple[str, ...]
    parts: dict[str, str] = field(default_factory=dict, compare=False)
    """What the hash is made of, each part's own hash: `config`, `env`, `module`,
    `credential <app>` per app it may call with a minted credential, and `file <path>` per
    file, so that a plan can say what changed."""


@dataclass(frozen=True)
class Build:
    """Every artifact of a spec, keyed by kind and name."""

    spec: Spec
    apps: dict[str, Artifact]
    tasks: dict[str, Artifact]


@functools.cache
def _template(templates: Path | None) -> jinja2.Template:
    """The app template, compiled once per template folder."""
    return _environment(templates).get_template(TEMPLATE)


def _environment(templates: Path | None) -> jinja2.Environment:
    folders = [str(templates)] if templates else []
    folders.append(str(blueprints_dir() / "codegen"))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_app(
    spec: Spec, app: App, templates: Path | None = None, sources: Sources | None = None
) -> str:
    """The generated module of `app`, checked to parse; `sources` shares file lookups
    between the apps of one compilation."""
    module = build_module(spec, app, sources or Sources(spec.root))
    source = _template(templates).render(m=module)
    try:
        ast.parse(source, filename=f"{app.name}/{MODULE_NAME}.py")
    except SyntaxError as exc:
        raise CompileError(
            f"the template for app {app.name!r} produced invalid Python at line {exc.lineno}: "
            f"{exc.msg}; check your template override in {templates}"
        ) from exc
    return source


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _config_parts(value: App | Task) -> dict[str, str]:
    # The frozen model's repr is deterministic (tuples, insertion-ordered dicts, no sets)
    # and ten times cheaper than dataclasses.asdict's deep copies.
    config = replace(value, env={}, credentials=())
    parts = {"config": _sha(repr(config)), "env": _sha(repr(value.env))}
    parts.update({f"credential {c.app}": _sha(repr(c)) for c in value.credentials})
    return parts


def _handler_modules(value: App | Task) -> list[str]:
    if isinstance(value, Task):
        return [value.handler.module]
    refs = [r.action for r in value.routes] + [s.handler for s in value.websockets]
    refs += [s.source for s in value.websockets]
    return sorted({r.module for r in refs if r is not None and hasattr(r, "module")})


def _includes(value: App | Task) -> tuple[str, ...]:
    """The globs of files the unit reads at run time: `include:`, and an app's static folder."""
    if isinstance(value, App) and value.static is not None:
        return (*value.include, f"{value.static.dir.rstrip('/')}/**/*")
    return value.include


def _artifact(
    spec: Spec, sources: Sources, value: App | Task, kind: str, source: str | None
) -> Artifact:
    files = sources.local_sources(_handler_modules(value), _includes(value))
    # Every header names the spec's sha256: leave it out, or editing one app restarts all.
    module = (source or "").replace(spec.sha256, "")
    relative = tuple(str(f.relative_to(spec.root)) for f in files)
    parts = _config_parts(value)
    if source is not None:
        parts["module"] = _sha(module)
    for name, file in zip(relative, files, strict=True):
        parts[f"file {name}"] = sources.hash_files([file])
    digest = hashlib.sha256()
    for name, part in parts.items():
        digest.update(f"{name}\0{part}\0".encode())
    return Artifact(value.name, kind, source, digest.hexdigest(), relative, parts)


def compile_spec(spec: Spec, templates: Path | None = None) -> Build:
    """Render every app's module and hash every app and task; writes nothing."""
    sources = Sources(spec.root)
    with gc_paused():
        apps = {
            name: _artifact(
                spec,
                sources,
                app,
                "app",
                render_app(spec, app, templates, sources) if app.generated else None,
            )
            for name, app in sorted(spec.apps.items())
        }
        tasks = {
            n: _artifact(spec, sources, t, "task", None) for n, t in sorted(spec.tasks.items())
        }
    return Build(spec, apps, tasks)


def write_module(source: str, folder: Path) -> Path:
    """Write a generated module into `folder`; unchanged bytes are not rewritten."""
    target = folder / f"{MODULE_NAME}.py"
    private_dir(folder)  # under .engine/, which only its user may read
    if not target.exists() or target.read_text(encoding="utf-8") != source:
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(source)
        tmp.replace(target)
    return target


def write_build(build: Build, out: Path) -> list[Path]:
    """Write each generated module to `out/<app>/_engine_app.py`; return the files written."""
    return [
        write_module(artifact.source, out / artifact.name)
        for artifact in build.apps.values()
        if artifact.source is not None
    ]
