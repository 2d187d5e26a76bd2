"""Where the shipped data folders (`schemas/`, `blueprints/`) live, installed or in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `name` shipped inside the wheel, or the checkout's top-level one."""
    installed = _PACKAGE / "_data" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def schema_path() -> Path:
    """The spec language's JSON Schema."""
    return data_dir("schemas") / "engine.schema.json"


def blueprints_dir() -> Path:
    """Built-in blueprints and the code-generation templates."""
    return data_dir("blueprints")
