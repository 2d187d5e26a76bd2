"""Idle Ray workers left in a removed app's working dir, on the control plane's node.

Ray keeps idle workers in a pool, and one that ran an app's build step or a replica that
failed to start stays there, its working directory the app's unpacked package, after the
app is gone. The dashboard has no API to end a worker, so on the node the control plane
runs on (where it also writes the secrets files) `reap_idle_workers` ends exactly those:
processes titled `ray::IDLE` whose working directory is one of the removed packages. The
raylet sees an idle worker exit and starts another when it needs one.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.backends.local.workdirs import terminate_working_in

IDLE_TITLE = b"ray::IDLE"
PACKAGES_FOLDER = "working_dir_files"


def package_folder(uri: str) -> str:
    """The folder name Ray unpacks a gcs:// package into."""
    return uri.removeprefix("gcs://").removesuffix(".zip")


def reap_idle_workers(packages: Iterable[str]) -> list[int]:
    """SIGTERM each idle Ray worker on this node working in one of `packages`."""
    folders = {package_folder(uri) for uri in packages}
    return terminate_working_in(folders, PACKAGES_FOLDER, IDLE_TITLE)
