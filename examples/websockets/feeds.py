"""The source of the /ticks stream: called every `interval` seconds, each value sent as JSON."""

import itertools
import time

_counter = itertools.count(1)


def next_tick() -> dict[str, float | int]:
    """The next tick: a running number and the server's clock."""
    return {"tick": next(_counter), "time": round(time.time(), 3)}
