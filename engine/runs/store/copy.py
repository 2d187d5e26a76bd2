"""Copying runs from one store to another: the way from SQLite to a shared PostgreSQL store.

Runs keep their ids, states, attempts, times, outputs and log paths; runs already in the
destination (by id) are skipped, so a copy can be run again, or resumed after it stopped.
Idempotency keys (webhook delivery ids) are not copied: the protocol does not expose them,
and they expire within the webhook's `dedupe:` window anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from engine.backends.base import Run, RunStore

__all__ = ["Copied", "RunImporter", "copy_runs"]

_EVERYTHING = 2**62  # list_runs' limit for "all of them" (SQLite and PostgreSQL take it)


class RunImporter(Protocol):
    """A store that can take runs as they are (PostgresRunStore)."""

    async def import_runs(self, runs: Sequence[Run]) -> int:
        """Store these runs unchanged, skipping ids it has; how many were new."""
        ...


Copied = tuple[int, int]
"""(runs copied, runs the destination already had)."""


async def copy_runs(
    source: RunStore,
    dest: RunImporter,
    *,
    batch: int = 500,
    progress: Callable[[int, int, int], None] | None = None,
) -> Copied:
    """Copy every run of `source` into `dest`, oldest first, `batch` runs per transaction;
    `progress(done, total, copied)` after each batch."""
    runs = list(reversed(await source.list_runs(limit=_EVERYTHING)))
    copied = 0
    for start in range(0, len(runs), batch):
        chunk = runs[start : start + batch]
        copied += await dest.import_runs(chunk)
        if progress is not None:
            progress(start + len(chunk), len(runs), copied)
    return copied, len(runs) - copied
