"""Units of the examples, as the control plane would build them, with fixed secret values."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.backends.base import ProjectContext
from engine.compiler import compile_spec
from engine.load import load_spec
from engine.plan import make_plan
from engine.spec.model import Target
from engine.units import Units, build_units

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/spec.yaml"))
TARGET = Target(
    "k8s", backend="kubernetes", namespace="shop", image="registry.example/engine-runtime:test"
)
API_TOKEN = "tok-0f3c9a1e5b7d2468ace13579bdf02468"


def secret_values(spec_path: Path, salt: str = "") -> dict[str, str]:
    """A fixed, recognisable value per secret of the spec (`salt` rotates them)."""
    spec = load_spec(spec_path, environ={})
    return {name: f"s3cr3t-{name}-{salt}value-7d1e" for name in spec.secrets}


def example_units(
    name: str, secrets: dict[str, str] | None = None, spec_path: Path | None = None
) -> tuple[Units, ProjectContext]:
    """The units of example `name` (or the spec at `spec_path`) and its project context."""
    path = spec_path or EXAMPLES / name / "spec.yaml"
    values = secret_values(path) if secrets is None else secrets
    spec = load_spec(path, environ={})
    build = compile_spec(spec)
    units = build_units(build, values, make_plan(build, values, {}, {}))
    context = ProjectContext(spec.project, spec.root, "http://engine.example:8765", API_TOKEN)
    return units, context


def target(**changes: object) -> Target:
    """The test target, with `changes`."""
    return replace(TARGET, **changes)  # type: ignore[arg-type]
