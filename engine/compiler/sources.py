"""The local source files an app or task runs, for its content hash.

Starting from its handler modules, follow `import` statements (parsed, never executed) to
files inside the spec's folder, transitively; add the `include:` globs.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def _imported_modules(file: Path, root: Path) -> frozenset[str]:
    try:
        stat = file.stat()
    except OSError:
        return frozenset()
    return _parse_imports(file, stat.st_mtime_ns, stat.st_size, file.parent.relative_to(root).parts)


@functools.lru_cache(maxsize=1024)
def _parse_imports(
    file: Path, mtime_ns: int, size: int, package: tuple[str, ...]
) -> frozenset[str]:
    """The modules `file` imports; cached while its mtime and size stay the same."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, OSError):
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package[: len(package) - node.level + 1] if node.level > 1 else package
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return frozenset(m for m in found if m)


@dataclass(frozen=True)
class Signature:
    """What a handler's source says about it, read without importing it: its docstring,
    and the Pydantic model its `body` parameter is annotated with (a class of the same
    module deriving from BaseModel), if any."""

    doc: str | None = None
    body_model: str | None = None


@functools.lru_cache(maxsize=1024)
def _signatures(file: Path, mtime_ns: int, size: int) -> dict[str, Signature]:
    """Function name -> Signature of `file`'s top-level functions; cached like imports."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, OSError):
        return {}
    models = {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(_is_base_model(b) for b in node.bases)
    }
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            hints = [p.annotation for p in params if p.arg == "body"]
            hint = hints[0] if hints else None
            model = hint.id if isinstance(hint, ast.Name) and hint.id in models else None
            found[node.name] = Signature(ast.get_docstring(node) or None, model)
    return found


def _is_base_model(base: ast.expr) -> bool:
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
    return name == "BaseModel"


class Sources:
    """The local files of one spec's apps and tasks, looked up for one compilation: each
    module's file and imports, each handler's Signature and each file's digest once,
    however many apps share them (1,000 apps naming one handler module look it up once,
    not 5,000 times). Make a new one for each compilation, so that edited files are seen."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, Path | None] = {}
        self._signatures: dict[tuple[str, str], Signature] = {}
        self._digests: dict[Path, bytes] = {}
        self._imports: dict[Path, frozenset[str]] = {}

    def module_file(self, module: str) -> Path | None:
        """The file under the root that `import module` would load, if it is local."""
        if module not in self._files:
            base = self.root.joinpath(*module.split("."))
            candidates = (base.with_suffix(".py"), base / "__init__.py")
            self._files[module] = next((c for c in candidates if c.is_file()), None)
        return self._files[module]

    def handler_signature(self, module: str, function: str) -> Signature:
        """The Signature of top-level `function` in local `module` (empty if not found)."""
        key = (module, function)
        if key not in self._signatures:
            file = self.module_file(module)
            found: dict[str, Signature] = {}
            if file is not None:
                try:
                    stat = file.stat()
                except OSError:
                    pass
                else:
                    found = _signatures(file, stat.st_mtime_ns, stat.st_size)
            self._signatures[key] = found.get(function, Signature())
        return self._signatures[key]

    def local_sources(self, modules: Iterable[str], include: Iterable[str] = ()) -> list[Path]:
        """Every local file reached from `modules`, plus the `include` globs, sorted."""
        seen: set[Path] = set()
        pending = list(modules)
        while pending:
            module = pending.pop()
            parts = module.split(".")
            # `import a.b.c` also runs a/__init__.py and a/b/__init__.py.
            for depth in range(1, len(parts) + 1):
                file = self.module_file(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    seen.add(file)
                    if file not in self._imports:
                        self._imports[file] = _imported_modules(file, self.root)
                    pending.extend(self._imports[file])
        for pattern in include:
            seen.update(p for p in self.root.glob(pattern) if p.is_file())
        return sorted(seen)

    def hash_files(self, files: Iterable[Path]) -> str:
        """sha256 over each file's path (relative to the root) and bytes."""
        digest = hashlib.sha256()
        for file in files:
            if file not in self._digests:
                self._digests[file] = hashlib.sha256(file.read_bytes()).digest()
            digest.update(str(file.relative_to(self.root)).encode() + b"\0")
            digest.update(self._digests[file])
        return digest.hexdigest()
