"""Idle Ray workers left in a removed app's working dir, on the control plane's node.

Ray keeps idle workers in a pool, and one that ran an app's build step or a replica that
failed to start stays there, its working directory the app's unpacked package, after the
app is gone. The dashboard has no API to end a worker, so on the node the control plane
runs on (where it also writes the secrets files) `reap_idle_workers` ends exactly those:
processes titled `ray::IDLE` whose working directory is one of the removed packages. The
raylet sees an idle worker exit and starts another when it needs one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

IDLE_TITLE = b"ray::IDLE"
PACKAGES_FOLDER = "working_dir_files"


def package_folder(uri: str) -> str:
    """The folder name Ray unpacks a gcs:// package into."""
    return uri.removeprefix("gcs://").removesuffix(".zip")


def idle_workers_in(packages: Iterable[str]) -> list[int]:
    """Pids of idle Ray workers on this node whose working dir is one of `packages`."""
    folders = {package_folder(uri) for uri in packages}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(entry / "cwd"))
            if cwd.name not in folders or cwd.parent.name != PACKAGES_FOLDER:
                continue
            if (entry / "cmdline").read_bytes().startswith(IDLE_TITLE):
                found.append(int(entry.name))
    return found


def reap_idle_workers(packages: Iterable[str]) -> list[int]:
    """SIGTERM each idle worker in one of `packages`; the pids signalled."""
    pids = idle_workers_in(packages)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids
