"""Route handlers of the golden spec."""

from helpers import describe


def add(x: int, y: int = 1) -> dict[str, int]:
    return {"sum": x + y}


def item(name: str) -> dict[str, str]:
    return {"item": describe(name)}
