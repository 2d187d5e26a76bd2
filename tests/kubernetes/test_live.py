"""Against a real cluster, only when ENGINE_TEST_KUBECONFIG names its kubeconfig (none can
run on this project's machines). ENGINE_TEST_NAMESPACE (default `engine-test`, which must
exist) and ENGINE_TEST_IMAGE (the runtime image, pushed where the cluster can pull it)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.backends.base import Attempt, DeployedState, Outcome
from engine.backends.kubernetes import create
from tests.kubernetes.units import example_units, target

KUBECONFIG = os.environ.get("ENGINE_TEST_KUBECONFIG")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECONFIG, reason="ENGINE_TEST_KUBECONFIG names no cluster"),
]


def test_an_example_runs_on_a_real_cluster_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_KUBECONFIG", str(KUBECONFIG))
    units, context = example_units("webhook-runner")
    live = target(
        namespace=os.environ.get("ENGINE_TEST_NAMESPACE", "engine-test"),
        image=os.environ.get("ENGINE_TEST_IMAGE", "engine-runtime:test"),
    )
    backend, executor = create(live, context, tmp_path)

    async def scenario() -> None:
        deployed = await backend.deploy(list(units.apps.values()), {}, timeout=300)
        assert deployed["runner"].state == DeployedState.RUNNING, deployed["runner"].detail
        assert (await backend.observe())["runner"].hash == units.apps["runner"].hash
        await executor.configure(list(units.tasks.values()), {})
        attempt = Attempt("live-run-1", "greet", 1, {"name": "cluster"})
        result = await asyncio.wait_for(executor.run(attempt), 300)
        assert result.outcome == Outcome.SUCCEEDED, result.error
        assert result.outputs == {"greeting": "Hello, cluster!"}
        await backend.remove(list(units.apps))
        await executor.configure([], {})
        assert await backend.observe() == {}

    asyncio.run(scenario())
