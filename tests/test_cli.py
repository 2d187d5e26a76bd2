"""The CLI's one error boundary: engine's errors and bugs alike become a line, never a
traceback, unless --debug asks for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from engine.cli import EngineGroup

SPEC = "version: 1\nproject: shop\napps:\n  web:\n    routes:\n"
SPEC += "      - {method: GET, path: /, respond: {json: 1}}\n"


def _group_with_a_bug() -> click.Group:
    @click.group(cls=EngineGroup)
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def group(ctx: click.Context, debug: bool) -> None:
        ctx.ensure_object(dict)["debug"] = debug

    @group.command()
    def boom() -> None:
        raise RuntimeError("a bug")

    return group


def test_an_unexpected_exception_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(_group_with_a_bug(), ["boom"])
    assert result.exit_code == 2
    assert "internal error: RuntimeError: a bug" in result.output
    assert "--debug" in result.output
    assert "Traceback" not in result.output


def test_debug_lets_the_exception_through() -> None:
    result = CliRunner().invoke(_group_with_a_bug(), ["--debug", "boom"])
    assert isinstance(result.exception, RuntimeError)


def test_a_damaged_state_database_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / ".engine").mkdir()
    (tmp_path / ".engine" / "state.db").write_text("not a database")
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "plan", "spec.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot read the state database" in result.stderr
    assert "move the file aside" in result.stderr
    assert "Traceback" not in result.stderr
