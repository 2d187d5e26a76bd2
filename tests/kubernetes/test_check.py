"""What a Kubernetes target refuses at validate: a `command:` app with nothing to run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import Diagnostic, SpecError
from engine.load import check_spec
from engine.spec.model import Spec
from tests.kubernetes.units import EXAMPLES

TARGETS = """
targets:
  prod:
    backend: kubernetes
    namespace: shop
"""


def browser(tmp_path: Path, extra: str = "") -> Path:
    shutil.copytree(EXAMPLES / "browser", tmp_path / "browser")
    spec = tmp_path / "browser" / "spec.yaml"
    spec.write_text(spec.read_text() + TARGETS + extra)
    return spec


def test_a_command_app_without_its_files_is_refused_where_its_command_is(tmp_path: Path) -> None:
    spec = browser(tmp_path)
    line = next(
        i
        for i, t in enumerate(spec.read_text().splitlines(), 1)
        if t.strip().startswith("command:")
    )
    with pytest.raises(SpecError) as caught:
        check_spec(spec, environ={}, label="spec.yaml", target="prod")
    (problem,) = caught.value.diagnostics
    assert (problem.line, problem.path) == (line, "apps.plain.command")
    assert "list the files it runs under `include:`" in problem.message
    assert check_spec(spec, environ={}, target="local").spec.apps["plain"].command


def test_a_command_app_runs_with_its_include_files_or_an_image_that_has_them(
    tmp_path: Path,
) -> None:
    spec = browser(tmp_path, "    image: registry.example/shop:1\n")
    assert check_spec(spec, environ={}, target="prod").spec
    text = spec.read_text().replace("    image: registry.example/shop:1\n", "")
    spec.write_text(
        text.replace("    health: /health\n", "    health: /health\n    include: [server.py]\n")
    )
    assert check_spec(spec, environ={}, target="prod").spec


def test_the_package_is_found_by_the_backend_name_and_renders_twice() -> None:
    from engine.backends import backend_module
    from tests.kubernetes.units import TARGET, example_units

    module = backend_module("kubernetes")
    units, context = example_units("quickstart")
    # Twice: a submodule named like a package function would replace it after one call.
    assert module.render(TARGET, units, context) == module.render(TARGET, units, context)
    assert module.check(TARGET, load_quickstart(), _never) == []


def load_quickstart() -> Spec:
    return check_spec(EXAMPLES / "quickstart" / "spec.yaml", environ={}).spec


def _never(path: tuple[str | int, ...], message: str) -> Diagnostic:
    raise AssertionError(f"{path}: {message}")
