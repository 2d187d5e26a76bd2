"""The api app's handler."""

from datetime import UTC, datetime


def greeting(name: str = "browser") -> dict[str, str]:
    """A greeting and the server's time, to show each click is a fresh call."""
    return {"message": f"Hello, {name}!", "at": datetime.now(UTC).isoformat(timespec="seconds")}
