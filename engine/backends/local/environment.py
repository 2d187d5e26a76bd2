"""The environment of a process the local backend starts: a minimal base, then the unit's.

Nothing else of the applying user's environment reaches an app or a task: a secret sitting
in the user's environment reaches only the processes it is granted to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.backends.base import SecretGrant

BASE_VARIABLES = ("PATH", "HOME", "LANG", "TZ")


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """PATH, HOME, LANG and TZ of `environ`, where set."""
    return {k: environ[k] for k in BASE_VARIABLES if k in environ}


def secret_environment(
    folder: Path, grants: Iterable[SecretGrant], secrets: Mapping[str, str]
) -> dict[str, str]:
    """Each grant as `VAR=value`, or as `VAR_FILE=path` of a 0600 file in `folder`."""
    env = {}
    for grant in grants:
        if grant.as_file:
            path = write_secret(folder, grant.variable, secrets[grant.secret])
            env[f"{grant.variable}_FILE"] = str(path)
        else:
            env[grant.variable] = secrets[grant.secret]
    return env


def write_secret(folder: Path, variable: str, value: str) -> Path:
    """Write one secret to `folder/variable`, readable by the user only (folders 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for parent in (folder, folder.parent, folder.parent.parent):
        os.chmod(parent, 0o700)
    path = folder / variable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return path
