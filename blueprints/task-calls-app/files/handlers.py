"""The app's handler: answers GET /?x=41 with {"result": 42}."""


def add_one(x: int) -> dict[str, int]:
    """Add one to `x`."""
    return {"result": x + 1}
