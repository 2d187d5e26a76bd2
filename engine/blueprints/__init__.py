"""Blueprints: reusable, parameterised spec pieces expanded in place of `uses:`."""

from __future__ import annotations

from engine.errors import Diagnostic
from engine.spec.loader import Document


def expand(doc: Document) -> list[Diagnostic]:
    """Expand the spec's `uses:` entries in place; return the problems found."""
    uses = doc.data.get("uses")
    if not uses:
        return []
    return [doc.diagnostic(("uses",), "blueprint expansion is not available in this build")]
