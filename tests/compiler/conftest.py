"""Fixtures of the compiler tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine.compiler import Build, compile_spec
from engine.load import load_spec

SpecFactory = Callable[..., Build]


@pytest.fixture
def make_build(tmp_path: Path) -> SpecFactory:
    """Write `spec` (YAML text) and `files` (name -> text) into tmp_path and compile them."""

    def make(spec: str, files: Mapping[str, str] | None = None, **options: Any) -> Build:
        for name, text in (files or {}).items():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text), encoding="utf-8")
        path = tmp_path / "spec.yaml"
        path.write_text(textwrap.dedent(spec), encoding="utf-8")
        return compile_spec(load_spec(path, environ={}), **options)

    return make
