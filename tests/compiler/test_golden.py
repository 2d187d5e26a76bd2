"""The golden spec's generated modules, byte for byte.

`golden/project/spec.yaml` declares every kind of route action, app-level bearer auth with
one route `auth: none`, api_key auth, a github webhook with two secrets (rotation) and
events that run and respond, a standard webhook, a plain webhook with an action, every
WebSocket pattern with a custom handler and a stream source, a static folder, and a
`command:` app (which has no module). Its expected modules are `golden/<app>.py.txt`.

After an intended change to the compiler or the template, rewrite them with

    ENGINE_UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py

and review the diff before committing it.
"""

from __future__ import annotations

import os

import pytest

from engine.compiler import compile_spec
from engine.load import load_spec
from tests.compiler.compile_helpers import GOLDEN, GOLDEN_PROJECT

BUILD = compile_spec(load_spec(GOLDEN_PROJECT / "spec.yaml", environ={}))
GENERATED = sorted(name for name, a in BUILD.apps.items() if a.source is not None)


def test_every_generated_app_has_a_golden_file() -> None:
    assert GENERATED == ["api", "backend", "hooks", "sockets", "web"]
    assert BUILD.apps["plain"].source is None
    on_disk = sorted(p.name.removesuffix(".py.txt") for p in GOLDEN.glob("*.py.txt"))
    assert on_disk == GENERATED


@pytest.mark.parametrize("name", GENERATED, ids=GENERATED)
def test_module_matches_golden_file(name: str) -> None:
    golden = GOLDEN / f"{name}.py.txt"
    source = BUILD.apps[name].source
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
        golden.write_text(source, encoding="utf-8")
    assert source == golden.read_text(encoding="utf-8")


def test_local_sources_of_each_app() -> None:
    files = {name: a.files for name, a in BUILD.apps.items()}
    assert files == {
        "api": ("handlers.py", "helpers.py"),
        "backend": ("handlers.py", "helpers.py"),
        "hooks": (),
        "plain": (),
        "sockets": ("feeds.py", "sockets.py"),
        "web": ("web/index.html",),  # the static folder
    }
    assert {n: t.files for n, t in BUILD.tasks.items()} == {
        "add-one": ("tasks.py",),
        "deploy": ("tasks.py",),
    }
