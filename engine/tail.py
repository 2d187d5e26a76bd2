"""Read a log file the way `tail -n N [-f]` does, without blocking the event loop for long."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

FOLLOW_INTERVAL = 0.2
"""Seconds between looks for new lines while following."""


async def tail_lines(path: Path, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
    """The last `tail` lines of `path`, then each new line as it is written if `follow`.

    A file that does not exist (yet) yields nothing.
    """
    if not path.exists():
        return
    with path.open(errors="replace") as f:
        for line in deque(f, maxlen=tail) if tail > 0 else ():
            yield line
        while follow:
            line = f.readline()
            if line:
                yield line
            else:
                await asyncio.sleep(FOLLOW_INTERVAL)
