"""How the local backend hands secrets to a process: as variables, or as private files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.backends.base import SecretGrant


def secret_env(
    folder: Path, grants: Iterable[SecretGrant], values: Mapping[str, str]
) -> dict[str, str]:
    """The variables that give a process its `grants`: the value itself, or, for a grant
    `as_file`, `<VAR>_FILE` naming a 0600 file in `folder`. The folder and its two parents
    (the per-project and per-user folders under /tmp) are made 0700."""
    env = {}
    for grant in grants:
        value = values[grant.secret]
        if grant.as_file:
            env[f"{grant.variable}_FILE"] = str(_write_secret(folder, grant.variable, value))
        else:
            env[grant.variable] = value
    return env


def _write_secret(folder: Path, variable: str, value: str) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for parent in (folder, folder.parent, folder.parent.parent):
        os.chmod(parent, 0o700)
    path = folder / variable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return path
