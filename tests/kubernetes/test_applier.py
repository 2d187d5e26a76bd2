"""The control plane's Applier driving KubernetesBackend, against the stub API server (no
real one can run here): what `engine apply --target k8s` does, minus the CLI."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from engine.backends.kubernetes import create
from engine.events import ApplyEvent, DoneEvent
from engine.layout import Layout
from engine.server.apply import Applier
from engine.server.launch import ControlPlaneAddress
from engine.spec.model import Target
from engine.state import State
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.stub import Stub
from tests.kubernetes.units import EXAMPLES, example_units

TARGETS = f"""
targets:
  k8s:
    backend: kubernetes
    namespace: {NAMESPACE}
    context: stub
    image: registry.example/engine-runtime:test
"""


class NoRunner:
    """Tasks are the runner's; these specs have none."""

    async def configure(self, units: object, endpoints: object) -> None:
        pass


def apply(project: Path) -> DoneEvent:
    """One `engine apply --target k8s` of the spec in `project`; its last event."""
    spec = project / "spec.yaml"
    events: list[ApplyEvent] = []

    async def emit(event: ApplyEvent) -> None:
        events.append(event)

    async def main() -> None:
        _, context = example_units("", spec_path=spec)
        target = Target("k8s", backend="kubernetes", namespace=NAMESPACE, context="stub",
                        image="registry.example/engine-runtime:test")  # fmt: skip
        backend, _ = create(target, context, project / ".engine")
        backend.poll = 0.02
        with State(project / ".engine" / "k8s") as state:
            api = ControlPlaneAddress("http://cp.example:8765", "t")
            applier = Applier(Layout(project), state, backend, NoRunner(), api, target="k8s")  # type: ignore[arg-type]
            await applier.apply(spec, {}, emit)  # it records what the cluster runs now

    asyncio.run(main())
    assert isinstance(events[-1], DoneEvent), events
    return events[-1]


def test_apply_rolls_out_only_what_changed_and_prunes_what_is_gone(
    stub: Stub, tmp_path: Path
) -> None:
    project = tmp_path / "app-calls-app"
    shutil.copytree(EXAMPLES / "app-calls-app", project)
    (project / "spec.yaml").write_text((project / "spec.yaml").read_text() + TARGETS)
    done = apply(project)
    assert done.ok, done
    assert {a.name: a.url for a in done.apps} == {
        "backend": "http://backend.shop.svc:80",
        "frontend": "http://frontend.shop.svc:80",
    }
    first = len(stub.requests)
    backend_py = project / "backend.py"
    backend_py.write_text(backend_py.read_text() + "\n# changed\n")
    assert apply(project).ok
    patched = {r.resource for r in stub.requests[first:] if r.method == "PATCH"}
    # A Service's name outlives its pods: frontend keeps its endpoint and is not touched.
    assert "deployments/backend" in patched and "deployments/frontend" not in patched
    assert len([b for b in stub.names("configmaps") if b.startswith("app-backend-")]) == 1
    text = (project / "spec.yaml").read_text()
    start, end = text.index("  frontend:"), text.index("targets:")
    (project / "spec.yaml").write_text(text[:start] + text[end:])
    assert apply(project).ok
    assert stub.names("deployments") == ["backend"]
    assert stub.names("services") == ["backend"]
