"""Handlers of the quickstart app: plain functions, called with the request's values."""


def hello(name: str = "world") -> dict[str, str]:
    """Greet `name` (the `name` query parameter, "world" when absent)."""
    return {"message": f"Hello, {name}!"}


def add(x: int, y: int = 1) -> dict[str, int]:
    """Add `y` (default 1) to `x`; both arrive as integers, checked by the route's query schema."""
    return {"result": x + y}
