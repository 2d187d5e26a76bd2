"""`engine new`: scaffolding every built-in, --list, --set, and the refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.compiler import compile_spec, write_build
from engine.load import load_spec
from engine.resources import blueprints_dir

BUILTINS = [
    "app-calls-app",
    "browser-app",
    "github-webhook",
    "quickstart",
    "task-calls-app",
    "webhook-runner",
    "websocket-chat",
]


def invoke(*args: str, input: str | None = None):
    from engine.cli_new import new

    return CliRunner().invoke(new, list(args), input=input, catch_exceptions=False)


@pytest.fixture(autouse=True)
def no_user_blueprints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_BLUEPRINTS", raising=False)


@pytest.mark.parametrize("name", BUILTINS, ids=BUILTINS)
def test_every_builtin_scaffolds_validates_and_compiles(name: str, tmp_path: Path) -> None:
    target = tmp_path / "proj"
    result = invoke(name, str(target))
    assert result.exit_code == 0, result.output
    spec = load_spec(target / "spec.yaml")
    assert spec.project == "proj"
    build = compile_spec(spec)
    assert build.apps
    assert f"  cd {target} && engine apply\n" in result.output


def test_list_shows_builtins_and_user_ones(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "quickstart"
    mine.mkdir(parents=True)
    (mine / "blueprint.yaml").write_text("name: quickstart\ndescription: My own start.\n")
    (mine / "spec.yaml.j2").write_text("apps: {}\n")
    result = invoke("--list", "--blueprints", str(tmp_path / "mine"))
    assert result.exit_code == 0
    lines = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in lines] == BUILTINS
    assert f"quickstart      My own start.  [{tmp_path / 'mine'}]" in lines
    assert lines[0] == (
        "app-calls-app   Two apps; frontend depends on backend and calls it by proxy and "
        "from Python."
    )


def test_list_shows_each_parameter() -> None:
    lines = invoke("--list").output.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("quickstart ")))
    assert lines[start + 1 : start + 4] == [
        " " * 18 + '--set app=<string>  (default "hello") The app\'s name.',
        " " * 18 + '--set greeting=<string>  (default "Hello") The word the app greets with.',
        " " * 18 + "--set port=<integer|null>  (default null) A fixed port for the app "
        "(default null, engine picks a free one).",
    ]


def test_new_project_has_the_modeline_and_ignores_engine_state(tmp_path: Path) -> None:
    from engine.resources import schema_path

    target = tmp_path / "proj"
    assert invoke("quickstart", str(target)).exit_code == 0
    first = (target / "spec.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={schema_path().resolve()}"
    assert (target / ".gitignore").read_text() == ".engine/\n"


def test_builtins_folder_skips_codegen() -> None:
    assert (blueprints_dir() / "codegen").is_dir()
    assert "codegen" not in invoke("--list").output


def test_set_converts_by_the_parameter_schema(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    result = invoke("quickstart", str(target), "--set", "port=8080", "--set", "greeting=Hi")
    assert result.exit_code == 0, result.output
    spec = load_spec(target / "spec.yaml")
    assert spec.apps["hello"].port == 8080
    assert 'GREETING = "Hi"\n' in (target / "handlers.py").read_text()


def test_set_project_names_the_project(tmp_path: Path) -> None:
    target = tmp_path / "Not_A_Label"
    result = invoke("quickstart", str(target), "--set", "project=shop")
    assert result.exit_code == 0, result.output
    assert load_spec(target / "spec.yaml").project == "shop"


def test_bad_set_value_names_the_set(tmp_path: Path) -> None:
    result = invoke("quickstart", str(tmp_path / "pj"), "--set", "port=99999")
    assert result.exit_code == 1
    assert result.output == "error: --set port=99999: 99999 is greater than the maximum of 65535\n"
    assert not (tmp_path / "pj").exists()


def test_unknown_parameter_and_unknown_blueprint(tmp_path: Path) -> None:
    result = invoke("quickstart", str(tmp_path / "pj"), "--set", "gretting=Hi")
    assert result.exit_code == 1
    assert result.output == (
        "error: --set gretting=Hi: blueprint 'quickstart' has no parameter 'gretting'; "
        "did you mean 'greeting'?\n"
    )
    result = invoke("quickstrat", str(tmp_path / "pj"))
    assert result.exit_code == 1
    assert result.output == "error: unknown blueprint 'quickstrat'; did you mean 'quickstart'?\n"


def test_non_empty_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = invoke("quickstart", str(target))
    assert result.exit_code == 1
    assert result.output == (
        f"error: {target} is not empty; choose a new folder (engine new never overwrites)\n"
    )
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_empty_directory_is_used(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.mkdir()
    assert invoke("quickstart", str(target)).exit_code == 0
    assert sorted(p.name for p in target.iterdir()) == [".gitignore", "handlers.py", "spec.yaml"]


def test_missing_required_parameter_without_a_terminal(make_blueprint, tmp_path: Path) -> None:
    make_blueprint(
        "needs",
        """
        name: needs
        parameters:
          type: object
          properties: {task: {type: string, description: The task to start.}}
          required: [task]
        """,
        "tasks:\n  {{ task }}: {handler: 'tasks:run'}\n",
    )
    result = invoke("needs", str(tmp_path / "pj"))
    assert result.exit_code == 1
    assert result.output == (
        "error: blueprint 'needs' needs: task (The task to start.); pass --set task=VALUE "
        "(there is no terminal to ask on)\n"
    )
    assert not (tmp_path / "pj").exists()
    result = invoke("needs", str(tmp_path / "pj"), "--set", "task=deploy")
    assert result.exit_code == 0, result.output
    assert sorted(load_spec(tmp_path / "pj" / "spec.yaml").tasks) == ["deploy"]


def test_invalid_generated_spec_writes_nothing(make_blueprint, tmp_path: Path) -> None:
    make_blueprint("bad", "name: bad\n", "apps:\n  web:\n    replicas: many\n")
    result = invoke("bad", str(tmp_path / "pj"))
    assert result.exit_code == 1
    assert result.output.startswith(f"{tmp_path / 'pj' / 'spec.yaml'}:9:15: apps.web.replicas: ")
    assert not (tmp_path / "pj").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-blueprints"]


def test_secrets_from_env_are_in_the_next_steps(tmp_path: Path) -> None:
    result = invoke("github-webhook", str(tmp_path / "gh"))
    assert result.exit_code == 0
    assert "  export GITHUB_WEBHOOK_SECRET=...        # the value of secret 'github-secret'\n" in (
        result.output
    )


def test_template_override_for_generated_code(tmp_path: Path) -> None:
    """`engine build --templates DIR`: a file there replaces the built-in template."""
    target = tmp_path / "proj"
    assert invoke("quickstart", str(target)).exit_code == 0
    templates = tmp_path / "templates"
    templates.mkdir()
    original = (blueprints_dir() / "codegen" / "app.py.j2").read_text()
    (templates / "app.py.j2").write_text(original + "# overridden by my template\n")
    build = compile_spec(load_spec(target / "spec.yaml"), templates)
    [written] = write_build(build, tmp_path / "out")
    assert written.read_text().endswith("\n# overridden by my template\n")
    plain = compile_spec(load_spec(target / "spec.yaml"))
    assert "# overridden by my template" not in plain.apps["hello"].source
    shutil.rmtree(templates)
