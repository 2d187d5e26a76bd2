"""Where a project's files live: everything under `.engine/` beside the spec.

Kept free of heavy imports: every CLI command loads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Where a project's files live: everything under `.engine/` beside the spec."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / ".engine"

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
        key = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"engine-{os.getuid()}" / key
