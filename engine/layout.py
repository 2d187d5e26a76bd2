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
    def secret_files(self) -> Path:
        """Secrets granted as files live outside `.engine/`, in a folder only the user reads."""
        key = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]  # one per target
        return Path(tempfile.gettempdir()) / f"engine-{os.getuid()}" / key
