"""The stream source of the golden spec."""

import itertools

_ticks = itertools.count()


def tick() -> dict[str, int]:
    return {"tick": next(_ticks)}
