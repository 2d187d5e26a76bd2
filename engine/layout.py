"""Where a project's files live: everything under `.engine/` beside the spec.

Kept free of heavy imports: every CLI command loads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOCAL = "local"
MARKER_VARIABLE = "ENGINE_PROCESS_MARKER"
"""The environment variable holding `Layout.marker` in every process the engine starts."""

PROJECT_FILE = "project.json"
"""In `.engine/`, written by an apply and removed by destroy: what was applied, from where."""

PRIVATE_UMASK = 0o077
"""Engine's processes create files for their user only: 0700 folders, 0600 files."""


def keep_files_private() -> None:
    """Make every file and folder this process (and its children) creates private.

    Called first thing by the CLI and the control plane: `.engine/` holds run inputs and
    outputs, logs, and the API token, and a process-wide umask covers every place that
    creates them (SQLite, log files, builds) at once, including the ones added later.
    """
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents as 0700 folders (mkdir's mode skips parents)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def tighten(folder: Path) -> None:
    """Take group and other permissions off `folder` and everything under it.

    For a `.engine/` made by an older engine, or by hand: new files are private already.
    """
    for top, dirs, files in os.walk(folder):
        for name in (top, *(os.path.join(top, f) for f in files + dirs)):
            try:
                mode = os.lstat(name).st_mode
                if mode & 0o077 and not os.path.islink(name):
                    os.chmod(name, mode & ~0o077)
            except FileNotFoundError:  # removed meanwhile (a run log, a temp file)
                continue


@dataclass(frozen=True)
class Layout:
    """Where a project's files live: everything under `.engine/` beside the spec.

    Each target keeps its own state: `local` in `.engine/` itself, any other target `T` in
    `.engine/targets/T/` (its state, run store, logs and control plane).
    """

    root: Path
    target: str = LOCAL

    @classmethod
    def of(cls, state_dir: Path) -> Layout:
        """The layout whose `dir` is `state_dir`."""
        state_dir = state_dir.resolve()
        if state_dir.parent.name == "targets" and state_dir.parent.parent.name == ".engine":
            return cls(state_dir.parent.parent.parent, state_dir.name)
        return cls(state_dir.parent)

    @property
    def dir(self) -> Path:
        base = self.root / ".engine"
        return base if self.target == LOCAL else base / "targets" / self.target

    @property
    def build(self) -> Path:
        return self.dir / "build"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def control_plane_log(self) -> Path:
        return self.logs / "control-plane.log"

    @property
    def run_logs(self) -> Path:
        return self.dir / "runs"

    def app_build(self, app: str, desired_hash: str) -> Path:
        """One folder per app version, so an old version never restarts into new code."""
        return self.build / app / desired_hash[:16]

    def data(self, app: str) -> Path:
        return self.dir / "data" / app

    @property
    def marker(self) -> str:
        """A per-project, per-target value set as MARKER_VARIABLE in every process the local
        backend starts (and inherited by their children), so the engine can find what it
        started even when its state is damaged or deleted."""
        return hashlib.sha256(str(self.dir.resolve()).encode()).hexdigest()[:24]

    @property
    def secret_files(self) -> Path:
        """Secrets granted as files live outside `.engine/`, in a folder only the user reads."""
        key = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]  # one per target
        return Path(tempfile.gettempdir()) / f"engine-{os.getuid()}" / key
