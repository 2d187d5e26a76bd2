"""The spec reference and the schema must not drift: every key the schema defines is
documented, and every key path the reference documents exists in the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.resources import schema_path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
SCHEMA = json.loads(schema_path().read_text(encoding="utf-8"))
DOCUMENTED_PATH = re.compile(r"^\| `((?:apps|tasks|secrets|uses)[^`]*)` \|", re.MULTILINE)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s and single-entry `allOf` wrappers to the schema that says something."""
    while True:
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].removeprefix("#/$defs/")]
        elif list(node.get("allOf", [])) and "properties" not in node and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node


def branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node itself and each of its oneOf/anyOf alternatives, resolved."""
    node = resolve(node)
    found = [node]
    for key in ("oneOf", "anyOf"):
        for branch in node.get(key, []):
            found += branches(branch)
    return found


def child(node: dict[str, Any], part: str) -> dict[str, Any] | None:
    """The schema of `part` (a key, `<name>` for any map key, `x[]` for x's items)."""
    key, items = (part[:-2], True) if part.endswith("[]") else (part, False)
    for candidate in branches(node):
        if key == "<name>":
            found = candidate.get("additionalProperties")
            found = found if isinstance(found, dict) else None
        else:
            found = candidate.get("properties", {}).get(key)
        if found is None:
            continue
        if not items:
            return found
        for array in branches(found):
            if "items" in array:
                return array["items"]
    return None


def property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                names.update(value)
            names |= property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= property_names(value)
    return names


@pytest.mark.parametrize("path", DOCUMENTED_PATH.findall(REFERENCE))
def test_every_documented_key_exists_in_the_schema(path: str) -> None:
    node: dict[str, Any] | None = SCHEMA
    for part in path.split("."):
        assert node is not None
        node = child(node, part)
        assert node is not None, f"{path}: {part!r} is not in the schema"


def test_every_schema_key_is_documented() -> None:
    missing = sorted(
        name
        for name in property_names(SCHEMA) - {"$schema"}
        if not re.search(rf"`[^`\n]*\b{re.escape(name)}\b[^`\n]*`", REFERENCE)
    )
    assert missing == []


def test_the_reference_documents_paths_at_all() -> None:
    assert len(DOCUMENTED_PATH.findall(REFERENCE)) >= 50
