"""KubernetesBackend against the stub API server (tests/kubernetes/stub.py): no Kubernetes
API server can run on this project's machines, so a real HTTP server on 127.0.0.1 answers
like one and records every request."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

from engine.backends.base import Backend, Deployed, DeployedState
from engine.backends.kubernetes import create, render
from engine.backends.kubernetes import names as n
from engine.errors import ApplyError, UsageError
from tests.kubernetes.conftest import backends
from tests.kubernetes.stub import TOKEN, Stub
from tests.kubernetes.units import EXAMPLES, example_units, secret_values, target


async def deploy_all(backend: Backend, example: str, spec: Path | None = None) -> None:
    """What the executor does: each dependency level once the previous one is up."""
    units, _ = example_units(example, spec_path=spec)
    apps = units.apps
    done: set[str] = set()
    while len(done) < len(apps):
        level = [
            u
            for u in apps.values()
            if u.name not in done and all(d.app in done for d in u.depends_on)
        ]
        result = await backend.deploy(level, {}, timeout=5)
        assert all(r.state == DeployedState.RUNNING for r in result.values()), result
        done |= {u.name for u in level}


def test_creating_the_backend_contacts_no_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_KUBECONFIG", str(tmp_path / "missing"))
    _, context = example_units("quickstart")
    backend, executor = create(target(context="nowhere"), context, tmp_path)
    assert backend.stable_endpoints and isinstance(backend, Backend)
    with pytest.raises(UsageError, match="cannot load the kubeconfig \\(context 'nowhere'\\)"):
        asyncio.run(backend.observe())


def test_every_object_is_a_server_side_apply_of_the_rendered_yaml(
    stub: Stub, tmp_path: Path
) -> None:
    backend, _ = backends("app-calls-app", tmp_path)
    asyncio.run(deploy_all(backend, "app-calls-app"))
    patches = stub.calls("PATCH")
    assert patches and all(r.content_type == "application/apply-patch+yaml" for r in patches)
    assert all(r.query == {"fieldManager": "engine", "force": "true"} for r in patches)
    assert all(r.authorization == f"Bearer {TOKEN}" for r in stub.requests)
    units, context = example_units("app-calls-app")
    files = render(target(), units, context)
    sent = {r.resource: r.body for r in patches}
    expected = {_resource(d): d for k, d in files.items() if not k.startswith("jobs/")}
    assert sent == expected  # the bytes `engine render` writes, object for object


def _resource(document: bytes) -> str:
    obj = yaml.safe_load(document)
    return f"{obj['kind'].lower()}s/{obj['metadata']['name']}"


def test_the_next_level_is_applied_only_once_the_previous_one_is_available(
    stub: Stub, tmp_path: Path
) -> None:
    stub.auto_available = False
    backend, _ = backends("app-calls-app", tmp_path)

    async def controller() -> None:
        while ("deployments", "backend") not in stub.objects:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the backend polls meanwhile; frontend must not appear
        assert ("deployments", "frontend") not in stub.objects
        stub.make_available("backend")
        while ("deployments", "frontend") not in stub.objects:
            await asyncio.sleep(0.01)
        stub.make_available("frontend")

    async def main() -> None:
        await asyncio.gather(deploy_all(backend, "app-calls-app"), controller())

    asyncio.run(main())
    order = [
        r.resource
        for r in stub.requests
        if r.method == "PATCH" or r.resource == "deployments/backend"
    ]
    first_frontend = order.index("deployments/frontend")
    assert order.index("deployments/backend") < first_frontend
    # The backend polled backend's Deployment, unavailable, before frontend was applied.
    assert order[:first_frontend].count("deployments/backend") >= 3


def _edited(example: str, tmp_path: Path, file: str, old: str, new: str) -> Path:
    shutil.copytree(EXAMPLES / example, tmp_path / example)
    path = tmp_path / example / file
    path.write_text(path.read_text().replace(old, new))
    return tmp_path / example / "spec.yaml"


def test_pruning_deletes_exactly_the_stale_objects(stub: Stub, tmp_path: Path) -> None:
    backend, _ = backends("app-calls-app", tmp_path)
    asyncio.run(deploy_all(backend, "app-calls-app"))
    old_bundles = set(stub.names("configmaps"))
    others = {"metadata": {"name": "not-ours", "labels": {n.COMPONENT: "bundle"}}}
    stub.put("configmaps", others)  # no ApplySet label: never ours to prune
    spec = _edited("app-calls-app", tmp_path, "backend.py", "def ", "def  ")
    units, _ = example_units("", spec_path=spec)
    assert asyncio.run(backend.deploy([units.apps["backend"]], {}, 5))["backend"].ok
    deleted = {r.resource for r in stub.calls("DELETE")}
    stale = next(b for b in old_bundles if b.startswith("app-backend-bundle-"))
    assert deleted == {f"configmaps/{stale}"}
    asyncio.run(backend.remove(["frontend"]))
    frontend_bundle = next(b for b in old_bundles if b.startswith("app-frontend-bundle-"))
    assert {r.resource for r in stub.calls("DELETE")} - deleted == {
        "deployments/frontend",
        "services/frontend",
        f"configmaps/{frontend_bundle}",
    }
    assert ("configmaps", "not-ours") in stub.objects


def test_unused_secrets_are_pruned_and_removing_everything_leaves_nothing(
    stub: Stub, tmp_path: Path
) -> None:
    backend, executor = backends("github-webhook", tmp_path)
    units, _ = example_units("github-webhook")
    asyncio.run(deploy_all(backend, "github-webhook"))
    asyncio.run(executor.configure(list(units.tasks.values()), {}))
    assert "engine-secret-github-secret" in stub.names("secrets")
    asyncio.run(backend.remove(["receiver"]))
    # The task `deploy` still needs the run API token, but no one needs the webhook secret.
    assert stub.names("secrets") == ["engine-api-token"]
    asyncio.run(executor.configure([], {}))
    assert stub.objects == {}


def _pod(name: str, app: str, hash: str, waiting: str) -> dict[str, object]:
    labels = n.selector("app-calls-app", app, "app") | {n.VERSION: n.short(hash)}
    status = {
        "containerStatuses": [
            {
                "name": "app",
                "state": {
                    "waiting": {
                        "reason": waiting,
                        "message": "back-off 10s restarting failed container",
                    }
                },
            }
        ]
    }
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def _replica_set(app: str, hash: str, revision: int, available: int) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"{app}-{revision}",
            "labels": n.selector("app-calls-app", app, "app"),
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {"template": {"metadata": {"annotations": {n.HASH: hash}}}},
        "status": {"availableReplicas": available},
    }


def test_a_crash_looping_rollout_fails_with_the_pods_reason_and_the_old_version_serving(
    stub: Stub, tmp_path: Path
) -> None:
    backend, _ = backends("app-calls-app", tmp_path)
    asyncio.run(deploy_all(backend, "app-calls-app"))
    old_hash = example_units("app-calls-app")[0].apps["backend"].hash
    spec = _edited("app-calls-app", tmp_path, "backend.py", "def ", "def  ")
    unit = example_units("", spec_path=spec)[0].apps["backend"]
    stub.auto_available = False
    stub.put("replicasets", _replica_set("backend", old_hash, 1, 1))
    stub.put("replicasets", _replica_set("backend", unit.hash, 2, 0))
    stub.put("pods", _pod("backend-new", "backend", unit.hash, "CrashLoopBackOff"))
    stub.logs["backend-new"] = (
        "Traceback (most recent call last):\nImportError: no module named nope\n"
    )
    deletes_before = len(stub.calls("DELETE"))
    result = asyncio.run(backend.deploy([unit], {}, 5))["backend"]
    assert result.state == DeployedState.FAILED
    assert result.hash == old_hash
    assert "old version keeps serving" in result.detail
    assert "pod backend-new: CrashLoopBackOff: back-off 10s" in result.detail
    assert "ImportError: no module named nope" in result.detail
    assert len(stub.calls("DELETE")) == deletes_before  # the old bundle is kept
    observed = asyncio.run(backend.observe())["backend"]
    assert (observed.hash, observed.state) == (old_hash, DeployedState.STARTING)


def test_a_rollout_past_its_progress_deadline_fails_with_the_controllers_message(
    stub: Stub, tmp_path: Path
) -> None:
    backend, _ = backends("quickstart", tmp_path)
    unit = example_units("quickstart")[0].apps["hello"]
    stub.auto_available = False

    async def main() -> dict[str, Deployed]:
        task = asyncio.create_task(backend.deploy([unit], {}, 5))
        while ("deployments", "hello") not in stub.objects:
            await asyncio.sleep(0.01)
        message = 'ReplicaSet "hello-1" has timed out progressing.'
        exceeded = {"type": "Progressing", "status": "False", "message": message,
                    "reason": "ProgressDeadlineExceeded"}  # fmt: skip
        generation = stub.objects[("deployments", "hello")]["metadata"]["generation"]
        stub.set_status(
            "deployments", "hello", {"observedGeneration": generation, "conditions": [exceeded]}
        )
        return await task

    result = asyncio.run(main())["hello"]
    assert result.state == DeployedState.FAILED
    assert result.detail == (
        "app 'hello' did not roll out: ReplicaSet \"hello-1\" has timed out progressing."
    )
    observed = asyncio.run(backend.observe())["hello"]
    assert (observed.state, observed.hash) == (DeployedState.FAILED, "")


def test_logs_come_from_the_apps_newest_pod(stub: Stub, tmp_path: Path) -> None:
    backend, _ = backends("quickstart", tmp_path)
    for name, created in (("hello-a", "2026-01-01T00:00:00Z"), ("hello-b", "2026-01-02T00:00:00Z")):
        stub.put(
            "pods",
            {
                "metadata": {
                    "name": name,
                    "creationTimestamp": created,
                    "labels": n.selector("quickstart", "hello", "app"),
                }
            },
        )
        stub.logs[name] = f"{name} one\n{name} two\n{name} three\n"

    async def collect() -> list[str]:
        return [line async for line in backend.logs("hello", tail=2)]

    assert asyncio.run(collect()) == ["hello-b two", "hello-b three"]
    log = [r for r in stub.requests if r.path.endswith("/log")][-1]
    assert log.query == {"container": "app", "tailLines": "2"}

    async def follow() -> list[str]:  # the stub ends the stream where a cluster would wait
        return [line async for line in backend.logs("hello", tail=1, follow=True)]

    assert asyncio.run(follow()) == ["hello-b three"]
    log = [r for r in stub.requests if r.path.endswith("/log")][-1]
    assert log.query == {"container": "app", "tailLines": "1", "follow": "true"}


def test_an_api_error_is_an_apply_error_without_the_request_body(
    stub: Stub, tmp_path: Path
) -> None:
    stub.forbidden.add("secrets")
    backend, _ = backends("github-webhook", tmp_path)
    unit = example_units("github-webhook")[0].apps["receiver"]
    with pytest.raises(ApplyError) as caught:
        asyncio.run(backend.deploy([unit], {}, 5))
    message = str(caught.value)
    assert message.startswith(
        "Kubernetes API: PATCH /api/v1/namespaces/shop/secrets/engine-api-token: 403"
    )
    for value in secret_values(EXAMPLES / "github-webhook" / "spec.yaml").values():
        assert value not in message


def test_an_unreachable_api_is_an_apply_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.kubernetes.stub import kubeconfig
    from tests.runtime.conftest import free_port

    port = free_port()
    monkeypatch.setenv("ENGINE_KUBECONFIG", str(kubeconfig(tmp_path / "kc", port)))
    backend, _ = backends("quickstart", tmp_path)
    with pytest.raises(
        ApplyError, match=f"cannot reach the Kubernetes API at http://127.0.0.1:{port}"
    ):
        asyncio.run(backend.observe())


def test_a_namespace_holding_another_project_is_refused_untouched(
    stub: Stub, tmp_path: Path
) -> None:
    first, _ = backends("app-calls-app", tmp_path)
    asyncio.run(deploy_all(first, "app-calls-app"))
    before = (len(stub.calls("PATCH")), len(stub.calls("DELETE")))
    backend, executor = backends("quickstart", tmp_path)
    unit = example_units("quickstart")[0].apps["hello"]
    result = asyncio.run(backend.deploy([unit], {}, 5))["hello"]
    assert (result.state, result.detail) == (
        DeployedState.FAILED,
        "app 'hello' was not applied: namespace 'shop' already holds engine project "
        "'app-calls-app'; give each project its own namespace",
    )
    with pytest.raises(ApplyError, match="already holds engine project 'app-calls-app'"):
        asyncio.run(executor.configure([], {}))
    assert (len(stub.calls("PATCH")), len(stub.calls("DELETE"))) == before


def test_an_app_named_like_an_object_not_of_this_project_is_refused(
    stub: Stub, tmp_path: Path
) -> None:
    stub.put("deployments", {"metadata": {"name": "backend", "labels": {"team": "payments"}}})
    backend, _ = backends("app-calls-app", tmp_path)
    units = example_units("app-calls-app")[0].apps
    results = asyncio.run(backend.deploy([units["backend"]], {}, 5))
    assert results["backend"].state == DeployedState.FAILED
    assert "a Deployment named 'backend' in namespace 'shop' is not this project's" in (
        results["backend"].detail
    )
    assert stub.objects[("deployments", "backend")]["metadata"]["labels"] == {"team": "payments"}
    assert not [
        r for r in stub.calls("PATCH") if r.resource.startswith(("deployments", "services"))
    ]
