"""Helpers of the compiler tests: the golden project, and fresh Python processes to import
generated modules in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_PROJECT = GOLDEN / "project"

# What the golden spec's apps need in their environment to be imported.
GOLDEN_ENV = {
    "API_TOKEN": "token-1",
    "SERVICE_KEY": "key-1",
    "GITHUB_SECRET": "gh-new",
    "GITHUB_SECRET_OLD": "gh-old",
    "BILLING_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
    "BACKEND_ENDPOINT": "http://127.0.0.1:9",
    "ENGINE_API_URL": "http://127.0.0.1:9/api/v1/runs",
    "ENGINE_API_TOKEN": "run-token",
}


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment for a child process, as the engine gives its apps."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def run_python(code: str, *, cwd: Path, env: Mapping[str, str], path: list[Path] = ()) -> Any:
    """Run `code` in a fresh interpreter with `path` first on sys.path; the JSON it prints last.

    Fails the test with the child's stderr when it exits non-zero.
    """
    prelude = f"import sys\nsys.path[:0] = {[str(p) for p in path]!r}\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None
