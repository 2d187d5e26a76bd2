"""The schema as editors see it: Ajv's strict mode, and the real yaml-language-server over
LSP (no diagnostics on every example and blueprint, the expected ones on a bad spec, each
key's hover equal to its own description), and `${VAR:-default}` where a number goes.

Node and the npm packages in tests/editors/package.json are needed; without them these
tests are skipped, saying what to install.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from engine.load import check_spec
from engine.resources import blueprints_dir, schema_path
from tests.editors.lsp import AJV, HERE, SERVER, LanguageServer, missing_tools

ROOT = HERE.parents[1]
SCHEMA = json.loads(schema_path().read_text(encoding="utf-8"))
EXAMPLES = sorted((ROOT / "examples").glob("*/spec.yaml"))
BLUEPRINTS = sorted(p.parent.name for p in blueprints_dir().glob("*/blueprint.yaml"))
SETTINGS = {"validate": True, "hover": True, "completion": True, "schemaStore": {"enable": False}}

INTERPOLATED = """version: 1
project: numbers
apps:
  web:
    port: ${PORT:-8080}
    replicas: ${REPLICAS:-2}
    routes:
      - method: GET
        path: /
        respond:
          status: ${STATUS:-200}
          json: {ok: true}
tasks:
  job:
    handler: "tasks:job"
    retries: ${RETRIES:-1}
    timeout: ${JOB_TIMEOUT:-30}
"""

BAD = """version: 1
project: bad-spec
apps:
  web:
    replicas: many
    prot: 8080
    routes:
      - {method: GET, path: /, handler: "handlers:hello"}
"""


# --- what the schema says each key is ------------------------------------------------------


def _expand(node: Any) -> Iterator[dict[str, Any]]:
    """`node` and every schema it is made of: its `$ref`, and its branches."""
    if not isinstance(node, dict):
        return
    yield node
    if "$ref" in node:
        yield from _expand(SCHEMA["$defs"][node["$ref"].removeprefix("#/$defs/")])
    for keyword in ("allOf", "oneOf", "anyOf"):
        for branch in node.get(keyword, []):
            yield from _expand(branch)
    for keyword in ("then", "else"):
        yield from _expand(node.get(keyword))


def _property(node: Any, key: str) -> dict[str, Any] | None:
    """The schema of `key` inside object schema `node` (None for free-form content)."""
    for part in _expand(node):
        sub = part.get("properties", {}).get(key)
        if isinstance(sub, dict):
            return sub
        for pattern, sub in part.get("patternProperties", {}).items():
            if re.search(pattern, key) and sub:
                return sub
        if isinstance(part.get("additionalProperties"), dict):
            return part["additionalProperties"]
    return None


def _items(node: Any) -> dict[str, Any] | None:
    return next((p["items"] for p in _expand(node) if isinstance(p.get("items"), dict)), None)


def _description(node: dict[str, Any]) -> str:
    return next((p["description"] for p in _expand(node) if p.get("description")), "")


def keys_and_descriptions(text: str) -> Iterator[tuple[str, int, int, str]]:
    """(dotted path, line, column, expected hover description) of each key the schema knows."""

    def walk(node: yaml.Node, schema: Any, path: str) -> Iterator[tuple[str, int, int, str]]:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = _property(schema, key.value)
                if sub is None:
                    continue
                where = f"{path}.{key.value}".lstrip(".")
                description = _description(sub)
                if description:
                    yield where, key.start_mark.line, key.start_mark.column, description
                yield from walk(value, sub, where)
        elif isinstance(node, yaml.SequenceNode):
            items = _items(schema)
            for i, value in enumerate(node.value):
                if items is not None:
                    yield from walk(value, items, f"{path}[{i}]")

    yield from walk(yaml.compose(text), SCHEMA, "")


_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|$~])")


def hover_description(markdown: str) -> str:
    """The description in yaml-language-server's hover: after the title, before the rest,
    its Markdown escapes undone."""
    parts = markdown.split("\n\n")
    if parts and parts[0].startswith("#### "):
        parts = parts[1:]
    return _ESCAPED.sub(r"\1", parts[0]).strip() if parts else ""


# --- the documents -----------------------------------------------------------------------


def blueprint_specs(folder: Path) -> list[Path]:
    """Each built-in blueprint scaffolded by `engine new` (its spec has the modeline)."""
    from engine.cli_new import new

    specs = []
    for name in BLUEPRINTS:
        target = folder / name
        result = CliRunner().invoke(new, [name, str(target)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        specs.append(target / "spec.yaml")
    return specs


@pytest.fixture(scope="module")
def server() -> Iterator[LanguageServer]:
    reason = missing_tools(SERVER)
    if reason:
        pytest.skip(reason)
    language_server = LanguageServer(SETTINGS)
    yield language_server
    language_server.close()


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    numbers, _ = with_modeline(tmp_path_factory.mktemp("numbers"), "spec.yaml", INTERPOLATED)
    return [*EXAMPLES, *blueprint_specs(tmp_path_factory.mktemp("blueprints")), numbers]


def with_modeline(folder: Path, name: str, text: str) -> tuple[Path, str]:
    path = folder / name
    text = f"# yaml-language-server: $schema={schema_path().resolve()}\n{text}"
    path.write_text(text)
    return path, text


# --- the tests ---------------------------------------------------------------------------


def test_schema_passes_ajv_strict_mode() -> None:
    reason = missing_tools(AJV)
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        ["node", str(HERE / "ajv_strict.js"), str(schema_path())],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_diagnostics_on_examples_and_blueprints(
    server: LanguageServer, documents: list[Path]
) -> None:
    problems = {}
    for path in documents:
        found = server.diagnostics(path, path.read_text())
        if found:
            problems[str(path)] = [(d["range"]["start"]["line"], d["message"]) for d in found]
    assert not problems


def test_expected_diagnostics_on_a_bad_spec(server: LanguageServer, tmp_path: Path) -> None:
    path, text = with_modeline(tmp_path, "spec.yaml", BAD)
    found = server.diagnostics(path, text)
    lines = text.splitlines()
    by_line = {lines[d["range"]["start"]["line"]].strip(): d["message"] for d in found}
    assert set(by_line) == {"replicas: many", "prot: 8080"}, found
    assert "Incorrect type" in by_line["replicas: many"]
    assert "prot" in by_line["prot: 8080"]


def test_each_keys_hover_is_its_own_description(
    server: LanguageServer, documents: list[Path]
) -> None:
    wrong = []
    checked = set()
    for path in documents:
        text = path.read_text()
        server.diagnostics(path, text)  # opens it
        for where, line, column, expected in keys_and_descriptions(text):
            shown = hover_description(server.hover(path, line, column + 1))
            checked.add(where.split(".")[-1])
            if shown != expected:
                wrong.append(f"{path.parent.name}: {where}: {shown!r} (expected {expected!r})")
    assert not wrong, "\n".join(wrong)
    assert len(checked) > 40  # the documents reach most of the language


def test_interpolated_numbers_are_accepted_by_the_editor_and_engine(
    server: LanguageServer, tmp_path: Path
) -> None:
    path, text = with_modeline(tmp_path, "spec.yaml", INTERPOLATED)
    (tmp_path / "tasks.py").write_text("def job() -> dict:\n    return {}\n")
    assert server.diagnostics(path, text) == []
    jsonschema.Draft202012Validator(SCHEMA).validate(yaml.safe_load(text))
    spec = check_spec(path, environ={"PORT": "9000"}).spec
    assert (spec.apps["web"].port, spec.apps["web"].replicas) == (9000, 2)
    assert (spec.tasks["job"].retries, spec.tasks["job"].timeout) == (1, 30)


def test_interpolated_text_where_a_number_goes_is_refused_by_engine(tmp_path: Path) -> None:
    from engine.errors import SpecError

    path, _ = with_modeline(tmp_path, "spec.yaml", INTERPOLATED)
    (tmp_path / "tasks.py").write_text("def job() -> dict:\n    return {}\n")
    with pytest.raises(SpecError) as caught:
        check_spec(path, environ={"PORT": "eighty"})
    assert [d.path for d in caught.value.diagnostics] == ["apps.web.port"]
    assert "expected a whole number, got 'eighty'" in caught.value.diagnostics[0].message
