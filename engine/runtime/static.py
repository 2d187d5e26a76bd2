"""A static folder that never serves the project's private files.

A folder served as-is may hold more than the page: with `dir: .` it holds `.engine/` (the
control plane's token, the run store), the spec and the secret files. Those are never
served, whatever the folder, even through a symlink:

- anything under the project's `.engine/` folder;
- the files named in `private` (the spec, the secret sources: `file:` and `env_file:`);
- every hidden file or folder (`.env`, `.git/`, ...), except `/.well-known/`.

A refused path answers 404, as a missing file does, so nothing tells what exists.
`engine validate` also refuses such a folder (engine.spec.project_files); this is the
second line, for a folder that changed after validation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from starlette.staticfiles import StaticFiles

__all__ = ["PrivateAwareStaticFiles"]

_PUBLIC_HIDDEN = frozenset({".well-known"})


class PrivateAwareStaticFiles(StaticFiles):
    """StaticFiles serving `directory` except the project's private files (module docstring)."""

    def __init__(self, *, directory: Path, private: Iterable[str] = (), root: Path) -> None:
        super().__init__(directory=directory, html=True)
        self._folder = os.path.realpath(directory)
        self._engine_dir = os.path.realpath(root / ".engine")
        self._private = frozenset(os.path.realpath(root / name) for name in private)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """The file for `path`, or ("", None) (a 404) when it is missing or private."""
        full_path, stat = super().lookup_path(path)
        if not full_path or self.is_private(full_path):
            return "", None
        return full_path, stat

    def is_private(self, full_path: str) -> bool:
        """Whether `full_path` (a real path inside the folder) must not be served."""
        real = os.path.realpath(full_path)
        if real in self._private or _inside(real, self._engine_dir):
            return True
        relative = os.path.relpath(real, self._folder)
        parts = [] if relative == "." else relative.split(os.sep)
        return any(p.startswith(".") and p not in _PUBLIC_HIDDEN for p in parts)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)
