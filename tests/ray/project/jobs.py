"""Tasks of the live Ray tests."""

import os
import time
from pathlib import Path

from engine.runtime import secret


def hello(name: str) -> dict[str, object]:
    """A greeting, and the length of the secret (never its value)."""
    return {"greeting": f"hello {name}", "note_length": len(secret("note"))}


def boom() -> None:
    """Always fails."""
    print("about to fail")
    raise RuntimeError("boom on purpose")


def sleepy(pid_file: str, seconds: float) -> dict[str, float]:
    """Record this process's pid, then sleep."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return {"slept": seconds}
