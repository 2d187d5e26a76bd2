"""What the control plane accepts to apply: only its own project's spec.

The API token is the only thing between a local user and the control plane's API. Were the
token to leak (it did once, through a static folder), the apply API must still not run
another user's code as the project's owner: it applies only a spec that sits in the
project's folder (beside `.engine/`) and belongs to the user who owns `.engine/`.
"""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["foreign_spec_problem"]


def foreign_spec_problem(project_root: Path, spec_path: str) -> str | None:
    """Why the control plane of `project_root` must refuse to apply `spec_path`, or None."""
    engine_dir = project_root / ".engine"
    try:
        owner = engine_dir.stat().st_uid
        spec = Path(spec_path).resolve(strict=True)
        info = spec.stat()
    except OSError as exc:
        return f"cannot read the spec {spec_path!r}: {exc.strerror or exc}"
    if spec.parent != project_root.resolve():
        return (
            f"{spec_path!r} is not this project's spec: the control plane of "
            f"{project_root} applies only a spec in that folder"
        )
    if not stat.S_ISREG(info.st_mode):
        return f"{spec_path!r} is not a regular file"
    if info.st_uid != owner:
        return (
            f"{spec_path!r} belongs to uid {info.st_uid}, not to the project's owner "
            f"(uid {owner}, who owns {engine_dir}); the control plane applies only its "
            "owner's spec"
        )
    if info.st_mode & stat.S_IWOTH:
        return (
            f"{spec_path!r} can be changed by any user (mode {stat.filemode(info.st_mode)}); "
            f"run `chmod o-w {spec_path}`"
        )
    return None
