"""The tasks the runner app starts. Each is called with its validated inputs."""

import time


def greet(name: str = "world") -> dict[str, str]:
    """Return a greeting for `name`."""
    return {"greeting": f"Hello, {name}!"}


def slow_sum(numbers: list[float], delay: float = 2) -> dict[str, float]:
    """Sleep `delay` seconds, then return the sum of `numbers`."""
    time.sleep(delay)
    return {"sum": sum(numbers)}
