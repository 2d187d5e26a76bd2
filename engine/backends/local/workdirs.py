"""Processes on this machine found by what they work in: for a cluster backend whose node
is this machine (Ray's idle workers keep a removed app's folder as their working dir).

Only the local backend signals processes; a cluster backend asks through this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection
from pathlib import Path


def working_in(folders: Collection[str], parent: str, title: bytes) -> list[int]:
    """Pids whose command line starts with `title` and whose working directory is a
    folder named one of `folders` inside a folder named `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(entry / "cwd"))
            if cwd.name not in folders or cwd.parent.name != parent:
                continue
            if (entry / "cmdline").read_bytes().startswith(title):
                found.append(int(entry.name))
    return found


def terminate_working_in(folders: Collection[str], parent: str, title: bytes) -> list[int]:
    """SIGTERM each process `working_in` finds; the pids signalled."""
    pids = working_in(folders, parent, title)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids
