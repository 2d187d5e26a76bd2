"""The api app's handler; the tests rewrite VERSION to roll out a new version."""

VERSION = 1


def version() -> dict[str, int]:
    """This version's number."""
    return {"version": VERSION}
