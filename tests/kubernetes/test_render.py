"""The manifests, offline: golden files, strict schemas of five Kubernetes releases, valid
names and labels, secret values only in Secrets, hashes that roll pods exactly when the
plan's hash changes, and the same bytes every time."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from engine.backends.kubernetes import names as n
from engine.backends.kubernetes import render
from engine.backends.kubernetes.manifests import JOB_TTL
from engine.errors import UsageError
from engine.runtime.credentials import mint
from tests.kubernetes.units import (
    API_TOKEN,
    EXAMPLE_NAMES,
    EXAMPLES,
    TARGET,
    example_units,
    secret_values,
)

GOLDEN = Path(__file__).parent / "golden"
VERSIONS = ("1.30", "1.31", "1.32", "1.33", "1.34")


def rendered(example: str, **kwargs: Any) -> dict[str, bytes]:
    units, context = example_units(example, **kwargs)
    return render(TARGET, units, context)


def documents(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [yaml.safe_load(data) for data in files.values()]


@pytest.fixture(scope="module")
def every_object() -> list[dict[str, Any]]:
    return [o for example in EXAMPLE_NAMES for o in documents(rendered(example))]


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_manifests_match_the_golden_files(example: str) -> None:
    files = rendered(example)
    folder = GOLDEN / example
    if os.environ.get("ENGINE_UPDATE_GOLDEN"):
        shutil.rmtree(folder, ignore_errors=True)
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    expected = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.yaml")}
    assert sorted(files) == sorted(expected)
    for name, data in files.items():
        assert data == expected[name], f"{example}/{name} differs (ENGINE_UPDATE_GOLDEN=1 rewrites)"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_passes_strict_validation(version: str, every_object: list[Any]) -> None:
    kinds = set()
    for obj in every_object:
        kubernetes_validate.validate(obj, version, strict=True)
        kinds.add(obj["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Job", "Secret", "Service"}


def test_strict_validation_rejects_a_misspelt_field_that_loose_validation_lets_through() -> None:
    deployment = yaml.safe_load(rendered("quickstart")["deployment-hello.yaml"])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert kubernetes_validate.validate(deployment, "1.30", strict=False) == "1.30"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(deployment, "1.30", strict=True)


def _labels(obj: dict[str, Any]) -> list[dict[str, str]]:
    found = [obj["metadata"].get("labels") or {}]
    template = obj.get("spec", {}).get("template")
    if template:
        found.append(template["metadata"].get("labels") or {})
    selector = obj.get("spec", {}).get("selector")
    if isinstance(selector, dict):
        found.append(selector.get("matchLabels", selector))
    return found


def test_every_name_and_label_is_valid(every_object: list[Any]) -> None:
    for obj in every_object:
        name = obj["metadata"]["name"]
        # Services and Jobs (their name is a label value on their pods) need DNS labels.
        if obj["kind"] in ("Service", "Job"):
            assert n.is_dns_label(name), name
        assert n.is_dns_subdomain(name), name
        for labels in _labels(obj):
            for key, value in labels.items():
                prefix, _, short = key.rpartition("/")
                assert n.is_label_value(short) and (not prefix or n.is_dns_subdomain(prefix)), key
                assert n.is_label_value(value), (key, value)
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            assert n.is_dns_label(container["name"])


def test_a_long_task_name_and_any_run_id_make_a_dns_label() -> None:
    task = "t" * 60
    first = n.job_name(task, "run_01J9Z/éé", 3)
    second = n.job_name(task, "run_01J9Z/éf", 3)
    assert n.is_dns_label(first) and n.is_dns_label(second) and first != second
    assert first.endswith("-3")


def test_the_applyset_id_is_computed_as_kubectl_computes_it() -> None:
    # The vector of kubectl's own test (pkg/cmd/apply/applyset_test.go, TestApplySet_ID).
    assert n.applyset_id("test-foo", "test-ns", "Foo", "foo.bar") == (
        "applyset-f9Rk5tKHoB72oV1tU2iFKxDwL8MBZTjMHFQ8V9WNNlA-v1"
    )


def test_the_parent_declares_its_member_kinds_and_members_point_at_it() -> None:
    docs = documents(rendered("app-calls-app"))
    parent = next(d for d in docs if d["metadata"]["name"] == "engine-app-calls-app")
    applyset = parent["metadata"]["labels"][n.APPLYSET_ID]
    assert parent["metadata"]["annotations"][n.APPLYSET_KINDS] == (
        "ConfigMap,Deployment.apps,Secret,Service"
    )
    assert parent["metadata"]["annotations"][n.APPLYSET_TOOLING].startswith("engine/v")
    for doc in docs:
        if doc is not parent and doc["kind"] != "Job":
            assert doc["metadata"]["labels"][n.APPLYSET_MEMBER] == applyset


@pytest.mark.parametrize("example", ["github-webhook", "standard-webhooks", "webhook-runner"])
def test_secret_values_appear_only_inside_secrets(example: str) -> None:
    values = [*secret_values(EXAMPLES / example / "spec.yaml").values(), API_TOKEN]
    files = rendered(example)
    forms = [f for v in values for f in (v.encode(), base64.b64encode(v.encode()))]
    in_secrets = b"".join(d for name, d in files.items() if name.startswith("secret-"))
    for form in forms[1::2]:
        assert form in in_secrets  # base64 under `data:`
    for name, data in files.items():
        if not name.startswith("secret-"):
            leaked = [f for f in forms if f in data]
            assert not leaked, f"{name} holds a secret value"


def test_a_file_grant_is_a_projected_volume_named_in_var_file(tmp_path: Path) -> None:
    spec = _copy_example("quickstart", tmp_path)
    text = spec.read_text().replace("apps:\n", "secrets:\n  tls-key: {env: TLS_KEY}\n\napps:\n")
    spec.write_text(
        text.replace("  hello:\n", "  hello:\n    secrets: [{name: tls-key, file: true}]\n")
    )
    units, context = example_units("", spec_path=spec)
    deployment = yaml.safe_load(render(TARGET, units, context)["deployment-hello.yaml"])
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["TLS_KEY_FILE"]["value"] == "/var/run/engine/secrets/TLS_KEY"
    assert "TLS_KEY" not in env
    projected = next(v for v in pod["volumes"] if v["name"] == "secret-files")["projected"]
    assert projected["sources"] == [
        {
            "secret": {
                "name": "engine-secret-tls-key",
                "items": [{"key": "value", "path": "TLS_KEY"}],
            }
        }
    ]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["secret-files"] == {
        "name": "secret-files",
        "mountPath": "/var/run/engine/secrets",
        "readOnly": True,
    }


def test_granted_secrets_and_the_token_are_secret_key_refs() -> None:
    deployment = yaml.safe_load(rendered("webhook-runner")["deployment-runner.yaml"])
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WEBHOOK_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "key": "value",
        "name": "engine-secret-webhook-api-key",
    }
    assert env["ENGINE_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "engine-api-token"


def test_endpoints_are_the_services_cluster_dns_names() -> None:
    deployment = yaml.safe_load(rendered("app-calls-app")["deployment-frontend.yaml"])
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["BACKEND_ENDPOINT"] == "http://backend.shop.svc:80"
    assert env["ENGINE_ENDPOINTS"] == '{"backend": "http://backend.shop.svc:80"}'


def _templates(files: dict[str, bytes]) -> dict[str, tuple[str, Any]]:
    """Each Deployment's plan hash annotation and whole pod template."""
    result = {}
    for obj in documents(files):
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            result[obj["metadata"]["name"]] = (
                template["metadata"]["annotations"][n.HASH],
                template,
            )
    return result


def _copy_example(example: str, tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / example, tmp_path / example)
    return tmp_path / example / "spec.yaml"


def test_the_pod_template_changes_exactly_when_the_plan_hash_does(tmp_path: Path) -> None:
    spec = _copy_example("webhook-runner", tmp_path)
    base = _templates(render(TARGET, *example_units("", spec_path=spec)))
    variants = {
        "same": example_units("", spec_path=spec),
        "rotated secret": example_units(
            "", secrets=secret_values(spec, salt="rotated-"), spec_path=spec
        ),
    }
    # An edit of the spec that leaves the app alone changes no hash, no template.
    spec.write_text(spec.read_text().replace("Returns a greeting.", "Returns a greeting!"))
    variants["unrelated edit"] = example_units("", spec_path=spec)
    spec.write_text(spec.read_text().replace("path: /orders", "path: /order"))
    variants["app edited"] = example_units("", spec_path=spec)
    changed = {}
    for label, (units, context) in variants.items():
        for app, (hash, template) in _templates(render(TARGET, units, context)).items():
            assert (hash != base[app][0]) == (template != base[app][1]), (label, app)
            changed[label] = hash != base[app][0]
    assert changed == {
        "same": False,
        "rotated secret": True,
        "unrelated edit": False,
        "app edited": True,
    }


def test_rendering_in_fresh_processes_with_other_hash_seeds_gives_the_same_bytes() -> None:
    code = (
        "import hashlib\n"
        "from engine.backends.kubernetes import render\n"
        "from tests.kubernetes.units import EXAMPLE_NAMES, TARGET, example_units\n"
        "digest = hashlib.sha256()\n"
        "for example in EXAMPLE_NAMES:\n"
        "    for name, data in render(TARGET, *example_units(example)).items():\n"
        "        digest.update(name.encode() + data)\n"
        "print(digest.hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "4242")
    }
    here = hashlib.sha256()
    for example in EXAMPLE_NAMES:
        for name, data in rendered(example).items():
            here.update(name.encode() + data)
    assert outputs == {here.hexdigest() + "\n"}


def test_no_yaml_anchors_and_one_object_per_document() -> None:
    for example in EXAMPLE_NAMES:
        for name, data in rendered(example).items():
            assert data.count(b"\n---\n") == 0 and data.startswith(b"---\n"), name
            assert b"&id" not in data and b"*id" not in data, name
            assert len(list(yaml.safe_load_all(data))) == 1


def test_a_bundle_too_big_for_a_configmap_is_refused_pointing_at_an_image(tmp_path: Path) -> None:
    spec = _copy_example("quickstart", tmp_path)
    (spec.parent / "blob.bin").write_bytes(os.urandom(1024 * 1024))
    spec.write_text(spec.read_text().replace("  hello:\n", "  hello:\n    include: [blob.bin]\n"))
    units, context = example_units("", spec_path=spec)
    with pytest.raises(UsageError, match=r"app 'hello': its bundle is 10\d\d KiB zipped.*image"):
        render(TARGET, units, context)


def test_a_task_attempt_job_runs_once_within_the_tasks_timeout() -> None:
    files = rendered("task-calls-app")
    job = yaml.safe_load(next(d for name, d in files.items() if name.startswith("jobs/")))
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert job["spec"]["ttlSecondsAfterFinished"] == JOB_TTL
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["annotations"][n.RUN_ID] == "example"


def test_a_tasks_minted_credential_is_a_secret_key_ref_and_only_in_its_secret() -> None:
    spec = Path(__file__).parents[1] / "fixtures" / "task_auth" / "spec.yaml"
    values = secret_values(spec)
    units, context = example_units("", secrets=values, spec_path=spec)
    files = render(TARGET, units, context)
    minted = mint(values["backend-token"], "task-auth", "backend", "nightly-report", "task")
    name = n.secret_name("credential.task.nightly-report.backend")
    secret = yaml.safe_load(files[f"secret-{name}.yaml"])
    assert base64.b64decode(secret["data"]["value"]).decode() == minted
    job = yaml.safe_load(next(d for f, d in files.items() if f.startswith("jobs/")))
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENGINE_CREDENTIAL_BACKEND"]["valueFrom"]["secretKeyRef"] == {
        "key": "value",
        "name": name,
    }
    assert json.loads(env["ENGINE_CREDENTIALS"]["value"]) == {
        "backend": {"kind": "bearer", "header": "Authorization", "env": "ENGINE_CREDENTIAL_BACKEND"}
    }
    # The task's bundle names the Secret it uses, so pruning keeps it while the task exists.
    bundle = yaml.safe_load(next(d for f, d in files.items() if f.startswith("configmap-task")))
    assert name in bundle["metadata"]["annotations"][n.SECRETS].split(",")
    forms = [minted.encode(), base64.b64encode(minted.encode())]
    for file, data in files.items():
        if file != f"secret-{name}.yaml":
            assert not [f for f in forms if f in data], f"{file} holds the task's credential"
