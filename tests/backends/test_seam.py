"""The backend seam: bundles, the import boundary, and the executor over a fake backend."""

from __future__ import annotations

import ast
import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backends.base import AppUnit, Backend, Deployed, DeployedState
from engine.compiler import compile_spec
from engine.events import DoneEvent, StepEvent
from engine.load import load_spec
from engine.plan import make_plan
from engine.units import build_units
from tests.runtime.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def units_of(folder: Path) -> Any:
    spec = load_spec(folder / "spec.yaml", environ={})
    build = compile_spec(spec)
    plan = make_plan(build, {}, {}, {})
    return build, plan, build_units(build, {}, plan)


def test_nothing_outside_the_local_backend_starts_or_signals_processes() -> None:
    offenders = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        if "backends/local" in path.as_posix():
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "engine.backends.local":
                names += [f"engine.backends.local.{a.name}" for a in node.names]
            bad = [n for n in names if n in ("subprocess", "signal") or n.endswith(".procs")]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in bad]
    assert offenders == []


def test_a_bundle_serves_on_its_own(tmp_path: Path) -> None:
    _, _, units = units_of(EXAMPLES / "quickstart")
    unit: AppUnit = units.apps["hello"]
    folder = unit.bundle.write(tmp_path / "bundle")
    assert unit.bundle.write(folder) == folder  # idempotent
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_engine_app:app", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the bundle's app did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "healthy"}
        route = httpx.get(f"http://127.0.0.1:{port}/add", params={"x": 41})
        assert route.status_code == 200, route.text
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_same_spec_gives_byte_identical_archives() -> None:
    first = {n: u.bundle.archive() for n, u in units_of(EXAMPLES / "browser")[2].apps.items()}
    second = {n: u.bundle.archive() for n, u in units_of(EXAMPLES / "browser")[2].apps.items()}
    assert first == second
    assert all(first.values())


def test_editing_a_static_file_changes_the_apps_hash(tmp_path: Path) -> None:
    project = tmp_path / "browser"
    shutil.copytree(EXAMPLES / "browser", project)
    units = units_of(project)[2]
    digest = units.apps["web"].bundle.digest()
    (project / "web" / "index.html").write_text("<p>changed</p>\n")
    units2 = units_of(project)[2]
    assert units2.apps["web"].hash != units.apps["web"].hash
    assert units2.apps["web"].bundle.digest() != digest
    assert units2.apps["api"].hash == units.apps["api"].hash


class FakeBackend:
    """An in-memory Backend: records each deploy, fails the apps it is told to."""

    name = "fake"

    def __init__(self, stable_endpoints: bool, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.stable_endpoints = stable_endpoints
        self.failing = failing
        self.running: dict[str, Deployed] = {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    async def observe(self) -> dict[str, Deployed]:
        return dict(self.running)

    async def deploy(
        self, units: Sequence[AppUnit], endpoints: Mapping[str, str], timeout: float
    ) -> dict[str, Deployed]:
        self.calls.append(("deploy", tuple(u.name for u in units)))
        result = {}
        for unit in units:
            if unit.name in self.failing:
                result[unit.name] = Deployed(
                    unit.name, unit.hash, DeployedState.FAILED, detail="boom"
                )
                continue
            url = f"http://{unit.name}.test" if self.stable_endpoints else f"http://{unit.hash[:8]}"
            self.running[unit.name] = Deployed(unit.name, unit.hash, DeployedState.RUNNING, url)
            result[unit.name] = self.running[unit.name]
        return result

    async def remove(self, names: Sequence[str]) -> None:
        self.calls.append(("remove", tuple(names)))
        for name in names:
            self.running.pop(name, None)

    async def logs(self, name: str, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        yield ""

    async def close(self) -> None:
        pass


class NoRunner:
    async def configure(self, units: object, endpoints: object) -> None:
        pass


SPEC = """\
version: 1
project: fake
apps:
  base:
    routes: [{method: GET, path: /, respond: {json: base}}]
  mid:
    depends_on: [base]
    routes: [{method: GET, path: /, respond: {json: mid}}]
  top:
    depends_on: [mid]
    routes: [{method: GET, path: /, respond: {json: top}}]
  side:
    routes: [{method: GET, path: /, respond: {json: side}}]
"""


def apply_with(backend: FakeBackend, tmp_path: Path, text: str) -> list[dict[str, Any]]:
    from engine.layout import Layout
    from engine.server.apply import Applier
    from engine.server.launch import ControlPlaneAddress
    from engine.state import State

    (tmp_path / "spec.yaml").write_text(text)
    events: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        events.append(event)

    async def main() -> None:
        with State(tmp_path / ".engine") as state:
            applier = Applier(
                Layout(tmp_path),
                state,
                backend,
                NoRunner(),  # type: ignore[arg-type]
                ControlPlaneAddress("http://cp", "t"),
            )
            for record_name, deployed in backend.running.items():
                from engine.state import AppRecord

                state.put_app(AppRecord(record_name, deployed.hash, "running", url=deployed.url))
            await applier.apply(tmp_path / "spec.yaml", {}, emit)
            for name, deployed in backend.running.items():
                from engine.state import AppRecord

                state.put_app(AppRecord(name, deployed.hash, "running", url=deployed.url))

    asyncio.run(main())
    return events


def steps(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.name, e.status) for e in events if isinstance(e, StepEvent)]


def test_the_executor_deploys_level_by_level(tmp_path: Path) -> None:
    backend = FakeBackend(stable_endpoints=True)
    apply_with(backend, tmp_path, SPEC)
    assert backend.calls == [
        ("deploy", ("base", "side")),
        ("deploy", ("mid",)),
        ("deploy", ("top",)),
    ]


def test_a_failed_dependency_skips_its_dependents(tmp_path: Path) -> None:
    backend = FakeBackend(stable_endpoints=True, failing={"mid"})
    events = apply_with(backend, tmp_path, SPEC)
    assert ("mid", "failed") in steps(events)
    assert ("top", "skipped") in steps(events)
    assert backend.calls == [("deploy", ("base", "side")), ("deploy", ("mid",))]
    assert isinstance(events[-1], DoneEvent) and events[-1].ok is False


def test_stable_endpoints_restart_no_dependent(tmp_path: Path) -> None:
    backend = FakeBackend(stable_endpoints=True)
    apply_with(backend, tmp_path, SPEC)
    backend.calls.clear()
    apply_with(backend, tmp_path, SPEC.replace("json: base}", "json: base-2}"))
    assert backend.calls == [("deploy", ("base",))]


def test_moving_endpoints_restart_the_dependents(tmp_path: Path) -> None:
    backend = FakeBackend(stable_endpoints=False)
    apply_with(backend, tmp_path, SPEC)
    backend.calls.clear()
    apply_with(backend, tmp_path, SPEC.replace("json: base}", "json: base-2}"))
    assert [c for c in backend.calls if c[0] == "deploy"] == [
        ("deploy", ("base",)),
        ("deploy", ("mid",)),
        ("deploy", ("top",)),
    ]


def test_deletes_and_the_event_stream(tmp_path: Path) -> None:
    backend = FakeBackend(stable_endpoints=True)
    apply_with(backend, tmp_path, SPEC)
    events = apply_with(backend, tmp_path, SPEC.split("  side:")[0])
    assert backend.calls[-1] == ("remove", ("side",))
    assert steps(events) == [("side", "stopping"), ("side", "deleted")]
    assert [type(e).__name__ for e in events] == [
        "PlanEvent",
        "StepEvent",
        "StepEvent",
        "DoneEvent",
    ]
    assert isinstance(FakeBackend(True), Backend)


def test_the_local_backend_package_answers_check_and_render() -> None:
    from engine.backends import backend_module
    from engine.errors import UsageError

    module = backend_module("local")
    build, _, units = units_of(EXAMPLES / "quickstart")
    local = build.spec.targets["local"]
    assert module.check(local, build.spec, lambda path, message: None) == []
    with pytest.raises(UsageError, match="nothing to render"):
        module.render(local, units, None)
