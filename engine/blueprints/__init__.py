"""Blueprints: reusable, parameterised spec pieces.

catalog.py   find blueprints (built-in, ENGINE_BLUEPRINTS, --blueprints) and read manifests
render.py    check parameters; render templates in a sandbox, `${{ }}` left untouched
prefix.py    prefix the names a fragment creates, and the references to them
expand.py    expand a spec's `uses:` in place, before validation
scaffold.py  create a whole project from a blueprint (`engine new`)
"""

from __future__ import annotations

from engine.blueprints.catalog import Blueprint, available, find_blueprint
from engine.blueprints.expand import expand

__all__ = ["Blueprint", "available", "expand", "find_blueprint"]
