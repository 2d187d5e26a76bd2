"""The render model: every identifier and statement of a generated module, computed here.

Templates only print what this module computes. Spec text reaches the output as `repr()`
of a validated value (via `literal`) or as an identifier checked by `identifier()` or made
by `python_name()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.compiler.builder import Import, ModuleBuilder, import_lines
from engine.compiler.endpoints import add_route, add_webhook, add_websocket
from engine.compiler.layout import Block, call, statement
from engine.compiler.literals import Construct
from engine.compiler.sources import Sources
from engine.spec.model import App, Spec


@dataclass
class AppModule:
    """All a template needs to print one app's module."""

    spec_file: str
    spec_sha256: str
    project: str
    app: str
    blocks: list[Block]
    import_lines: list[str]
    handler_imports: list[Import]

    @property
    def title(self) -> str:
        """The docstring's first line; quotes are escaped so no name can end the docstring."""
        text = f"App {self.app!r} of project {self.project!r}, generated from {self.spec_file!r}."
        return text.replace("\\", "\\\\").replace('"', "\\x22")


def build_module(spec: Spec, app: App, sources: Sources) -> AppModule:
    """The render model of `app`'s generated module."""
    b = ModuleBuilder(spec, app, sources)
    b.blocks.append(Block(statement("app = ", _create(b, spec, app))))
    for route in app.routes:
        add_route(b, route)
    if app.webhooks:
        comment = (
            "# Webhooks check a signature over the raw bytes, so each is a plain Starlette"
            " route,\n# without FastAPI's parameter parsing; rt.webhook lists it in the"
            " OpenAPI document."
        )
        for n, hook in enumerate(app.webhooks):
            add_webhook(b, hook, comment if n == 0 else "")
    for socket in app.websockets:
        add_websocket(b, socket)
    if app.static:
        private = {"private": private_files(spec)}
        files = call("rt.static_files", app.static.dir, **private)
        mount = call("app.mount", app.static.path, files, name="static")
        b.blocks.append(Block(statement("", mount)))
    return AppModule(
        spec_file=spec.path.name,
        spec_sha256=spec.sha256,
        project=spec.project,
        app=app.name,
        blocks=b.blocks,
        import_lines=import_lines(b),
        handler_imports=sorted(b.imports.values(), key=lambda i: (i.module, i.name)),
    )


def _create(b: ModuleBuilder, spec: Spec, app: App) -> Construct:
    options: dict[str, Any] = {"project": spec.project, "name": app.name}
    if app.description:
        options["description"] = app.description
    if app.health != "/health":
        options["health"] = app.health
    if not app.metrics:
        options["metrics"] = False
    if app.allowed_hosts:
        options["allowed_hosts"] = app.allowed_hosts
    return call("rt.create_app", **options, **b.rate_limit(app.rate_limit))


def private_files(spec: Spec) -> tuple[str, ...]:
    """The project's files a static folder must never serve: the spec and secret sources."""
    names = [spec.path.name]
    for source in spec.secrets.values():
        names += [name for name in (source.file, source.env_file) if name]
    return tuple(dict.fromkeys(names))
