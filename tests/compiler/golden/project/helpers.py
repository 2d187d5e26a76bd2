"""What handlers.py imports: followed by the compiler into the app's content hash."""


def describe(name: str) -> str:
    return f"item {name}"
