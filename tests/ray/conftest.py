"""Fixtures of the Ray tests: units from a spec, and one Ray head for the whole session."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import tempfile
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engine.backends import ray as ray_backend
from engine.backends.base import ProjectContext
from engine.backends.ray.jobs import RayJobExecutor
from engine.backends.ray.serve import RayBackend
from engine.compiler import compile_spec
from engine.load import load_spec
from engine.plan import levels, make_plan
from engine.spec.model import Spec, Target
from engine.units import Units, build_units
from tests.ray.head import Head, start_head, stop_head

HERE = Path(__file__).parent
REPO = HERE.parent.parent
EXAMPLES = REPO / "examples"
PROJECT = HERE / "project"
API_URL = "http://127.0.0.1:7000"
API_TOKEN = "api-token-7d1f0c9e-never-shown"

T = TypeVar("T")

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: pip install -e '.[test,ray]' (CI installs it)",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end (the tests are plain functions)."""
    return asyncio.run(coro)


def secret_values(spec: Spec) -> dict[str, str]:
    """A recognisable value for every secret of the spec."""
    return {name: f"s3cret-value-of-{name}" for name in spec.secrets}


@dataclass
class Loaded:
    """A compiled spec turned into units, with what a backend is told about the project."""

    spec: Spec
    units: Units
    context: ProjectContext
    secrets: dict[str, str]

    def levels(self) -> list[list[str]]:
        """The app names of each dependency level, in order."""
        order = levels(self.spec)
        depths = sorted(set(order.values()))
        return [sorted(n for n, depth in order.items() if depth == d) for d in depths]


def load(path: Path, secrets: Mapping[str, str] | None = None) -> Loaded:
    """Compile the spec at `path` into units at the versions a first apply wants."""
    spec = load_spec(path, {})
    values = dict(secrets) if secrets is not None else secret_values(spec)
    build = compile_spec(spec)
    plan = make_plan(build, values, {}, {}, stable_endpoints=True)
    units = build_units(build, values, plan)
    context = ProjectContext(spec.project, spec.root, API_URL, API_TOKEN)
    return Loaded(spec, units, context, values)


def ray_target(address: str = "http://127.0.0.1:8265", serve_port: int = 8000) -> Target:
    """A `ray` target whose token is the secret `ray-token`."""
    return Target("ray-dev", "ray", address=address, token="ray-token", serve_port=serve_port)


def copy_project(source: Path, folder: Path) -> Path:
    """A copy of a spec's folder (tests change its files); the copied spec's path."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".engine", "__pycache__"))
    return folder / "spec.yaml"


@pytest.fixture(scope="session")
def head() -> Iterator[Head]:
    """One Ray head for the session; afterwards, none of its processes may survive.

    Its folder is a short one of its own: Ray's Unix socket paths must stay under 108
    bytes, and pytest's numbered temp folders are pruned by other sessions' runs.
    """
    folder = Path(tempfile.mkdtemp(prefix="engine-ray-"))
    temp_dir = folder / "ray"
    temp_dir.mkdir()
    popen, started = start_head(temp_dir)
    try:
        yield started
    finally:
        survivors = stop_head(popen, started)
        shutil.rmtree(folder, ignore_errors=True)
    assert survivors == [], f"processes of the Ray head survived its SIGTERM: {survivors}"


@dataclass
class OnRay:
    """A project's backend and executor on the session's head."""

    loaded: Loaded
    backend: RayBackend
    executor: RayJobExecutor

    def endpoints(self) -> dict[str, str]:
        """Every app's Serve URL."""
        return {name: self.backend._cluster.endpoint(name) for name in self.loaded.units.apps}

    async def apply(self, timeout: float = 90.0) -> dict[str, Any]:
        """Deploy every level in order, then configure the tasks."""
        results: dict[str, Any] = {}
        for level in self.loaded.levels():
            units = [self.loaded.units.apps[n] for n in level]
            results.update(await self.backend.deploy(units, self.endpoints(), timeout))
        await self.executor.configure(list(self.loaded.units.tasks.values()), self.endpoints())
        return results

    async def close(self) -> None:
        """Close both clients (apps keep running)."""
        await self.backend.close()
        await self.executor.close()


def on_ray(loaded: Loaded, head: Head, state_dir: Path) -> OnRay:
    """The backend and executor of `loaded` against `head` (create them inside a loop)."""
    target = ray_target(head.address, head.serve_port)
    secrets = {**loaded.secrets, "ray-token": head.token}
    backend, executor = ray_backend.create(target, loaded.context, state_dir, secrets)
    return OnRay(loaded, backend, executor)
