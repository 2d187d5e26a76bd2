"""Generated modules import; the local sources an app runs are followed into its hash; a
template override folder is used, and a broken one is reported by app."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.compiler import TEMPLATE, CompileError, compile_spec, write_build
from engine.load import load_spec
from engine.resources import blueprints_dir
from tests.compiler.compile_helpers import GOLDEN_ENV, GOLDEN_PROJECT, base_env, run_python

GOLDEN_APPS = ["api", "backend", "hooks", "sockets", "web"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Each golden module imported, one after the other, in one fresh process: its health."""
    out = tmp_path_factory.mktemp("build")
    write_build(compile_spec(load_spec(GOLDEN_PROJECT / "spec.yaml", environ={})), out)
    code = f"""
        import importlib.util, json, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient
        results = {{}}
        for name in {GOLDEN_APPS!r}:
            file = {str(out)!r} + "/" + name + "/_engine_app.py"
            spec = importlib.util.spec_from_file_location("gen_" + name, file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            with TestClient(module.app, base_url="http://127.0.0.1") as client:
                answer = client.get("/health")
            results[name] = [answer.status_code, answer.json(), module.app.title]
        print(json.dumps(results))
    """
    return run_python(code, cwd=GOLDEN_PROJECT, env=base_env(**GOLDEN_ENV), path=[GOLDEN_PROJECT])


@pytest.mark.parametrize("name", GOLDEN_APPS, ids=GOLDEN_APPS)
def test_golden_module_imports_in_a_fresh_process(imported: dict[str, list], name: str) -> None:
    assert imported[name] == [200, {"status": "healthy"}, f"golden: {name}"]


CHAIN_SPEC = """\
    version: 1
    project: chain
    apps:
      one:
        routes: [{method: GET, path: /, handler: "handlers:hello"}]
      two:
        routes: [{method: GET, path: /, handler: "other:hello"}]
        include: ["data/*.json"]
"""
CHAIN_FILES = {
    "handlers.py": "import helpers\n\ndef hello():\n    return helpers.greet()\n",
    "helpers.py": "from pkg.util import word\n\ndef greet():\n    return word()\n",
    "pkg/__init__.py": "",
    "pkg/util.py": "import json\n\ndef word():\n    return 'hello'\n",
    "other.py": "def hello():\n    return 'other'\n",
    "data/a.json": "{}",
    "data/b.json": "[]",
    "data/c.txt": "not included",
}


def test_handler_import_chain_is_followed(make_build, tmp_path: Path) -> None:
    build = make_build(CHAIN_SPEC, CHAIN_FILES)
    assert build.apps["one"].files == (
        "handlers.py",
        "helpers.py",
        "pkg/__init__.py",
        "pkg/util.py",
    )
    assert build.apps["two"].files == ("data/a.json", "data/b.json", "other.py")


def test_change_deep_in_the_chain_changes_only_the_app_importing_it(
    make_build, tmp_path: Path
) -> None:
    before = make_build(CHAIN_SPEC, CHAIN_FILES)
    after = make_build(CHAIN_SPEC, {"pkg/util.py": "def word():\n    return 'changed'\n"})
    assert after.apps["one"].content_hash != before.apps["one"].content_hash
    assert after.apps["two"].content_hash == before.apps["two"].content_hash


@pytest.mark.parametrize(
    ("file", "changes_two"),
    [("data/a.json", True), ("data/new.json", True), ("data/c.txt", False)],
    ids=["included-file-edited", "included-file-added", "file-outside-the-glob"],
)
def test_include_globs_are_hashed(make_build, tmp_path: Path, file: str, changes_two: bool) -> None:
    before = make_build(CHAIN_SPEC, CHAIN_FILES)
    after = make_build(CHAIN_SPEC, {file: '{"changed": true}'})
    assert (after.apps["two"].content_hash != before.apps["two"].content_hash) is changes_two
    assert after.apps["one"].content_hash == before.apps["one"].content_hash


def test_editing_one_app_in_the_spec_leaves_the_others_hash_alone(
    make_build, tmp_path: Path
) -> None:
    before = make_build(CHAIN_SPEC, CHAIN_FILES)
    described = CHAIN_SPEC.replace("include:", "description: Now described.\n        include:")
    after = make_build(described)
    assert after.spec.sha256 != before.spec.sha256
    assert after.apps["two"].content_hash != before.apps["two"].content_hash
    assert after.apps["one"].content_hash == before.apps["one"].content_hash


def _override(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    text = (blueprints_dir() / "codegen" / TEMPLATE).read_text(encoding="utf-8")
    assert old in text
    (folder / TEMPLATE).write_text(text.replace(old, new), encoding="utf-8")
    return folder


def test_template_override_folder_is_used(make_build, tmp_path: Path) -> None:
    folder = _override(tmp_path, "Do not edit:", "# Overridden. Do not edit:")
    build = make_build(CHAIN_SPEC, CHAIN_FILES, templates=folder)
    assert "# Overridden. Do not edit:" in build.apps["one"].source
    default = make_build(CHAIN_SPEC)
    assert "Overridden" not in default.apps["one"].source


def test_override_producing_invalid_python_names_the_app(make_build, tmp_path: Path) -> None:
    folder = _override(tmp_path, "{{ block.code }}", "= {{ block.code }}")
    with pytest.raises(CompileError) as caught:
        make_build(CHAIN_SPEC, CHAIN_FILES, templates=folder)
    assert "app 'one'" in str(caught.value)
    assert str(folder) in str(caught.value)


def test_write_build_skips_command_apps_and_rewrites_nothing_unchanged(tmp_path: Path) -> None:
    build = compile_spec(load_spec(GOLDEN_PROJECT / "spec.yaml", environ={}))
    written = write_build(build, tmp_path / "out")
    assert sorted(p.parent.name for p in written) == GOLDEN_APPS
    stamps = [p.stat().st_mtime_ns for p in written]
    shutil.copystat(written[0], written[0])
    assert [p.stat().st_mtime_ns for p in write_build(build, tmp_path / "out")] == stamps
