"""Fixtures of the Kubernetes backend's tests: a stub API server and a backend driving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backends.kubernetes import create
from engine.backends.kubernetes.cluster import KubernetesBackend
from engine.backends.kubernetes.jobs import JobExecutor
from tests.kubernetes.stub import Stub, kubeconfig, serve
from tests.kubernetes.units import example_units, target

NAMESPACE = "shop"


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stub]:
    """A stub API server (no real one can run here), with ENGINE_KUBECONFIG pointing at it."""
    server, state = serve(NAMESPACE)
    monkeypatch.setenv(
        "ENGINE_KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", server.server_port))
    )
    yield state
    server.shutdown()
    server.server_close()


def backends(
    example: str, tmp_path: Path, **changes: object
) -> tuple[KubernetesBackend, JobExecutor]:
    """The backend and executor of `example` on the test target, polling fast."""
    _, context = example_units(example)
    backend, executor = create(target(context="stub", **changes), context, tmp_path / ".engine")
    backend.poll = executor.poll = 0.02
    return backend, executor
