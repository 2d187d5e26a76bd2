"""Same spec, same bytes: in one process, across processes and hash seeds, and under ruff."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from engine.compiler import compile_spec, write_build
from engine.load import load_spec
from tests.compiler.compile_helpers import GOLDEN_PROJECT, base_env, run_python

SPEC = GOLDEN_PROJECT / "spec.yaml"


def test_compiling_twice_gives_identical_modules() -> None:
    first = compile_spec(load_spec(SPEC, environ={}))
    second = compile_spec(load_spec(SPEC, environ={}))
    assert first.apps == second.apps
    assert first.tasks == second.tasks


def test_fresh_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    code = f"""
        import json
        from pathlib import Path
        from engine.compiler import compile_spec
        from engine.load import load_spec
        build = compile_spec(load_spec(Path({str(SPEC)!r}), environ={{}}))
        print(json.dumps({{
            name: [a.source, a.content_hash, list(a.files)]
            for name, a in [*build.apps.items(), *build.tasks.items()]
        }}))
    """
    results = [
        run_python(code, cwd=tmp_path, env=base_env(PYTHONHASHSEED=seed)) for seed in ("0", "12345")
    ]
    assert results[0] == results[1]
    here = compile_spec(load_spec(SPEC, environ={}))
    assert results[0]["api"][1] == here.apps["api"].content_hash


def test_header_names_the_spec_file_and_its_sha256() -> None:
    build = compile_spec(load_spec(SPEC, environ={}))
    sha = hashlib.sha256(SPEC.read_bytes()).hexdigest()
    for name in ("api", "hooks", "sockets"):
        lines = build.apps[name].source.splitlines()
        assert lines[0] == f"\"\"\"App '{name}' of project 'golden', generated from 'spec.yaml'."
        assert lines[2] == f"Spec sha256: {sha}"


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_generated_code_is_already_ruff_formatted(tmp_path: Path) -> None:
    written = write_build(compile_spec(load_spec(SPEC, environ={})), tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--line-length", "100", "--diff", "--no-cache"]
        + [str(p) for p in written],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
