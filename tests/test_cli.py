"""The CLI's one error boundary: engine's errors and bugs alike become a line, never a
traceback, unless --debug asks for it."""

from __future__ import annotations

import json
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


def _engine(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_target_names_the_targets_there_are(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = _engine(tmp_path, "validate", "--target", "prod")
    assert result.returncode == 1
    assert "spec.yaml has no target 'prod'; its targets are: local" in result.stderr


def test_rendering_the_local_target_says_what_to_use_instead(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = _engine(tmp_path, "render", "--target", "local", "-o", "out")
    assert result.returncode == 1
    assert "there is nothing to render; use `engine build SPEC`" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_is_a_spec_and_json_errors_are_json(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "spec.yaml").write_text(SPEC)
    assert _engine(tmp_path, "validate", "proj").stdout.startswith("proj/spec.yaml: valid")
    missing = _engine(tmp_path, "plan", "nowhere", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {
        "error": "nowhere: no such file; pass the spec (a file, or a folder holding spec.yaml)"
    }


def test_a_duration_option_takes_units(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = _engine(tmp_path, "apply", "--timeout", "soon")
    assert result.returncode == 2
    assert "'soon' is not a duration" in result.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly() -> None:
    @click.group(cls=EngineGroup)
    def group() -> None:
        pass

    @group.command()
    def chatty() -> None:
        raise BrokenPipeError(32, "Broken pipe")  # what click.echo raises once `head` left

    result = CliRunner().invoke(group, ["chatty"])
    assert result.exit_code == 141
    assert "internal error" not in result.output
