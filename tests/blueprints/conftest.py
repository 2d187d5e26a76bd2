"""Fixtures for the blueprint tests: blueprint folders and specs written into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

BlueprintFactory = Callable[..., Path]


@pytest.fixture
def user_blueprints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of user blueprints, named in ENGINE_BLUEPRINTS."""
    folder = tmp_path / "my-blueprints"
    folder.mkdir()
    monkeypatch.setenv("ENGINE_BLUEPRINTS", str(folder))
    return folder


@pytest.fixture
def make_blueprint(user_blueprints: Path) -> BlueprintFactory:
    """Factory: `make_blueprint(name, manifest, template, files)` writes a user blueprint."""

    def make(name: str, manifest: str, template: str, files: dict[str, str] | None = None) -> Path:
        folder = user_blueprints / name
        (folder / "files").mkdir(parents=True)
        (folder / "blueprint.yaml").write_text(textwrap.dedent(manifest).lstrip("\n"))
        (folder / "spec.yaml.j2").write_text(textwrap.dedent(template).lstrip("\n"))
        for relative, text in (files or {}).items():
            (folder / "files" / relative).write_text(textwrap.dedent(text).lstrip("\n"))
        return folder

    return make


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: `write_spec(text)` writes tmp_path/project/spec.yaml (dedented)."""

    def write(text: str) -> Path:
        path = tmp_path / "project" / "spec.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
