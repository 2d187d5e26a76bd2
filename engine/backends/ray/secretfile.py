"""Secrets for Ray replicas and jobs: 0600 files on the node, never in a Ray config.

Ray has no secret primitive: a runtime_env's `env_vars` are shown in plain text by the
dashboard to anyone holding the cluster's token. So the control plane writes each unit
version's secret values (and the run API token) to a 0600 JSON file under its state
folder, the unit's env_vars name that file (`ENGINE_SECRETS_FILE`), and the replica or
job loads it at start (`load_secrets()`). Grants `as_file` get a file of their own, named
by `<VAR>_FILE` as on every target.

This needs the node that runs the replica or job to read the control plane's folder: the
control plane on the head node of a one-node cluster, or that folder on a shared
filesystem (docs/ray.md says so).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.backends.base import AppUnit, SecretGrant, TaskUnit
from engine.runtime import ConfigError

SECRETS_VARIABLE = "ENGINE_SECRETS_FILE"


@dataclass(frozen=True)
class UnitFiles:
    """Where one unit version's secrets are: a JSON file of variables, a folder of files."""

    values: Path
    folder: Path

    def file(self, grant: SecretGrant) -> Path:
        """The file of a grant delivered `as_file`."""
        return self.folder / grant.variable


def unit_files(secrets_dir: Path, unit: AppUnit | TaskUnit) -> UnitFiles:
    """The paths of a unit version's secrets (named by kind, name and hash)."""
    kind = "app" if isinstance(unit, AppUnit) else "task"
    stem = f"{kind}-{unit.name}-{unit.hash[:16]}"
    return UnitFiles(secrets_dir / f"{stem}.json", secrets_dir / stem)


def write_secrets(
    secrets_dir: Path, unit: AppUnit | TaskUnit, extra: Mapping[str, str]
) -> UnitFiles:
    """Write the unit's granted secrets (and `extra`, e.g. the API token), each 0600."""
    # Imported here: replicas import this module for load_secrets(), and need none of it.
    from engine.backends.local.environment import write_secret

    files = unit_files(secrets_dir, unit)
    values = dict(extra)
    for grant in unit.grants:
        value = unit.secrets[grant.secret]
        if grant.as_file:
            write_secret(files.folder, grant.variable, value)
        else:
            values[grant.variable] = value
    write_secret(secrets_dir, files.values.name, json.dumps(values, sort_keys=True))
    return files


def remove_secrets(secrets_dir: Path, kind: str, name: str) -> None:
    """Remove every version's secret files of one app or task."""
    for path in secrets_dir.glob(f"{kind}-{name}-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def load_secrets() -> None:
    """In a replica or job: put the unit's secret variables into os.environ."""
    path = os.environ.get(SECRETS_VARIABLE)
    if not path:
        return
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"the secrets file {path} cannot be read on this node ({exc.strerror}): "
            "the node must see the control plane's .engine folder (see docs/ray.md)"
        ) from exc
    os.environ.update(values)
