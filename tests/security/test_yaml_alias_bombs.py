"""Item 13: a YAML alias bomb is refused, positioned, by the real CLI, before it takes the
machine's memory (by count of values, and by the size of repeated text)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import engine_command

REPO = Path(__file__).resolve().parents[2]
NESTED = REPO / "tests" / "spec" / "corpus" / "71-alias-bomb.yaml"
WIDE_TEXT = "version: 1\nproject: bomb\nx-a: &a '{text}'\nx-b: [{aliases}]\n".format(
    text="z" * 100_000, aliases=", ".join(["*a"] * 200)
)


@pytest.mark.parametrize(("case", "where"), [("nested", ":8:6: x-f:"), ("text", ":4:6: x-b:")])
def test_validate_refuses_an_alias_bomb(tmp_path: Path, case: str, where: str) -> None:
    spec = NESTED if case == "nested" else tmp_path / "spec.yaml"
    if case == "text":
        spec.write_text(WIDE_TEXT)
    done = subprocess.run(
        [*engine_command(), "validate", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done
    assert f"{spec}{where}" in done.stderr and "alias bomb" in done.stderr
    assert "Traceback" not in done.stderr
