"""Random mutations of valid specs never crash validation: every outcome is a Spec or a
SpecError whose diagnostics are all positioned and worded."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import SpecError
from engine.load import check_spec

BASES: list[dict[str, Any]] = [
    {
        "version": 1,
        "project": "shop",
        "secrets": {
            "webhook-api-key": {"env": "WEBHOOK_API_KEY"},
            "github-secret": {"file": "secrets/github.txt"},
            "previous": {"env_file": ".env", "key": "PREVIOUS"},
        },
        "tasks": {
            "add-one": {
                "handler": "tasks:add_one_task",
                "inputs": {"x": {"type": "integer"}},
                "depends_on": ["add-one-app"],
                "secrets": ["github-secret", {"name": "previous", "env": "OLD"}],
                "env": {"LOG_LEVEL": "info", "N": 3},
                "retries": 2,
                "timeout": "5m",
            },
            "deploy": {"handler": "tasks.deploy:run"},
        },
        "apps": {
            "add-one-app": {
                "description": "Adds one to x.",
                "port": 8080,
                "auth": {"bearer": "webhook-api-key"},
                "routes": [
                    {
                        "method": "GET",
                        "path": "/",
                        "query": {"x": {"type": "integer"}},
                        "handler": "handlers:add_one",
                    },
                    {"method": "POST", "path": "/d", "run": {"task": "deploy", "wait": "90s"}},
                    {
                        "method": "POST",
                        "path": "/run/{name}",
                        "auth": "none",
                        "run": {"task": "${{ path.name }}", "allow": ["deploy", "add-one"]},
                    },
                ],
            },
            "front": {
                "depends_on": ["add-one-app"],
                "secrets": [{"name": "github-secret", "file": True}],
                "routes": [
                    {"method": "GET", "path": "/x/{id}", "proxy": {"app": "add-one-app"}},
                    {"method": "GET", "path": "/r", "respond": {"json": {"a": "${{ query.a }}"}}},
                ],
                "webhooks": [
                    {
                        "path": "/github-webhook",
                        "provider": "github",
                        "secret": "github-secret",
                        "events": {"push": {"run": {"task": "deploy", "inputs": "${{ body }}"}}},
                        "max_body": "25MB",
                        "dedupe": "72h",
                    },
                    {
                        "path": "/std",
                        "provider": "standard",
                        "secrets": ["github-secret", "previous"],
                        "events": {"order.created": {"respond": {"status": 204}}},
                    },
                    {"path": "/plain", "provider": "plain", "action": {"respond": {}}},
                ],
            },
        },
    },
    {
        "version": 1,
        "project": "live",
        "apps": {
            "ws": {
                "replicas": 2,
                "websockets": [
                    {"path": "/echo", "pattern": "echo", "max_message": "64 KiB"},
                    {"path": "/broadcast", "pattern": "broadcast"},
                    {"path": "/chat/{room}", "pattern": "chat", "heartbeat": 30},
                    {
                        "path": "/stream",
                        "pattern": "stream",
                        "source": "feeds:next_value",
                        "interval": 1,
                    },
                    {"path": "/task-runner", "pattern": "task-runner", "max_connections": 5},
                    {"path": "/custom", "handler": "ws:handle"},
                ],
                "static": {"path": "/ui", "dir": "web/"},
            },
            "dash": {"command": ["streamlit", "run", "d.py", "--port", "{port}"], "port": 8501},
        },
    },
]

NAMES = ["shop", "add-one", "add-one-app", "deploy", "front", "github-secret", "previous", "ws"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["on", "no", "5x", "25 parsecs", "${{ body. }}", "${X}", "a:b", "/p/{q}"]),
    st.sampled_from(NAMES),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["x-note", "routes", "port", "secret", "handler", "on", "depends_on"]),
)


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every dict and list in `node`."""
    found = []
    if isinstance(node, dict | list):
        found.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found += _containers(child, (*path, key))
    return found


def _at(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        target = _at(spec, draw(st.sampled_from(_containers(spec))))
        slots = list(target) if isinstance(target, dict) else list(range(len(target)))
        operation = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "rename"]))
        if operation == "insert" or not slots:
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(values))
            continue
        slot = draw(st.sampled_from(slots))
        if operation == "delete":
            del target[slot]
        elif operation == "replace":
            target[slot] = draw(values)
        elif operation == "duplicate" and isinstance(target, list):
            target.append(copy.deepcopy(target[slot]))
        elif operation == "rename" and isinstance(target[slot], str):
            target[slot] = draw(st.sampled_from(NAMES) | st.text(max_size=10))
        elif operation == "rename" and isinstance(target, dict):
            target[draw(keys)] = target.pop(slot)
    return spec


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    text = yaml.safe_dump(draw(mutated_specs()), sort_keys=False, allow_unicode=True)
    if draw(st.integers(0, 3)):  # mostly well-formed YAML, so the later stages get exercised
        return text
    position = draw(st.integers(0, len(text)))
    edit = draw(st.sampled_from(["tab", "truncate", "insert", "duplicate-line", "delete"]))
    if edit == "tab":
        return text[:position] + "\t" + text[position:]
    if edit == "truncate":
        return text[:position]
    if edit == "insert":
        return text[:position] + draw(st.text(max_size=5)) + text[position:]
    if edit == "delete":
        return text[:position] + text[position + draw(st.integers(1, 10)) :]
    lines = text.splitlines(keepends=True)
    index = draw(st.integers(0, max(len(lines) - 1, 0)))
    return "".join(lines[: index + 1] + lines[index:])


def test_bases_are_valid() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for i, base in enumerate(BASES):
            path = Path(folder) / f"spec{i}.yaml"
            path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
            check_spec(path, environ={})


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=spec_texts(), as_bytes=st.booleans())
def test_mutations_never_crash(text: str, as_bytes: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        # Sometimes not UTF-8: the same text in Latin-1 where it can be.
        data = text.encode("latin-1", "replace") if as_bytes else text.encode("utf-8")
        path.write_bytes(data)
        try:
            check_spec(path, environ={})
        except SpecError as exc:
            assert exc.diagnostics
            for diagnostic in exc.diagnostics:
                assert diagnostic.file == str(path.resolve())
                assert diagnostic.line >= 1
                assert diagnostic.col >= 1
                assert diagnostic.path
                assert diagnostic.message.strip()
                assert "\n" not in diagnostic.message
