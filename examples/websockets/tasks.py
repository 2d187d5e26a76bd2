"""The task the /tasks socket starts in the README's example."""

import time


def countdown(start: int = 3) -> dict[str, object]:
    """Count down from `start`, one step a second."""
    for n in range(start, 0, -1):
        print(n)
        time.sleep(1)
    return {"counted_from": start, "message": "liftoff"}
