"""One runner per run store: the control plane that holds the store's lock runs the queue.

Several control planes may share one PostgreSQL store (a cluster's, or replicas of one).
Each answers the API and stores the runs submitted to it; only the one holding the
store's advisory lock carries runs out, and it picks up what the others stored. If it
dies, its connection and so its lock go with it, and another takes over within
`RETRY` seconds. A store without such a lock (SQLite: one machine, one control plane,
which the project's state lock already guarantees) always leads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from engine.backends.base import RunStore
from engine.errors import EngineError
from engine.runs.runner import Runner

log = logging.getLogger("engine.server")

RETRY = 2.0
"""Seconds between tries for the lock while another control plane holds it."""

PICK_UP = 1.0
"""Seconds between looks for runs that other control planes stored, while leading."""


async def lead(runner: Runner, store: RunStore) -> None:
    """Start `runner` once this control plane may run the queue; follow the lock after."""
    acquire: Callable[[], Awaitable[bool]] | None = getattr(store, "acquire_runner_lock", None)
    if acquire is None:
        await runner.start()
        return
    runner.leading.clear()
    started = False
    while True:
        try:
            held = await acquire()
        except EngineError as exc:  # the store is unreachable: answer the API, retry
            log.warning("cannot take the run store's lock: %s", exc)
            held = False
        if held and not started:
            await runner.start()
            started = True
        if held:
            runner.leading.set()
            await runner.pick_up()
        elif runner.leading.is_set():
            log.warning("lost the run store's lock: another control plane runs the queue")
            runner.leading.clear()
        await asyncio.sleep(PICK_UP if held else RETRY)
