"""The manifests of a project on Kubernetes: a pure, deterministic function of its units.

    render(target, units, context) -> {"deployment-backend.yaml": b"...", ...}

Per app a Deployment, a Service and an immutable ConfigMap holding its bundle; per task
version a bundle ConfigMap, and under `jobs/` the Job one attempt would run as; per
granted secret a Secret (the only place a value appears); the run API's token in a Secret
too; and the ApplySet parent. One object per file and per YAML document, keys sorted, no
anchors: the same units give the same bytes. The backend applies exactly these objects.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from engine import __version__
from engine.backends.base import AppUnit, Attempt, ProjectContext, TaskUnit, unit_environment
from engine.backends.kubernetes import names as n
from engine.backends.kubernetes.pods import BUNDLE_KEY, Obj, app_pod, task_pod
from engine.errors import UsageError
from engine.spec.model import Target

MAX_BUNDLE = 900 * 1024
"""A ConfigMap holds at most 1 MiB; leave room for its metadata."""
JOB_TTL = 3600
"""Seconds a finished Job (and its pod's log) stays for `engine logs` and reattach."""
DEFAULT_IMAGE = f"engine-runtime:{__version__}"
"""The runtime image built from docker/runtime.Dockerfile, when the target names none."""


@dataclass(frozen=True)
class Site:
    """Where a project's objects go and what every pod is told: computed once per render."""

    project: str
    namespace: str
    image: str

    @classmethod
    def of(cls, target: Target, context: ProjectContext) -> Site:
        """Where `target` puts the project of `context`."""
        return cls(context.project, target.namespace or "default", target.image or DEFAULT_IMAGE)

    @property
    def applyset(self) -> str:
        return n.applyset_id(n.parent_name(self.project), self.namespace)

    def metadata(self, name: str, component: str, labelled: str | None = None) -> Obj:
        """An applied object's metadata: standard labels and ApplySet membership."""
        labels = n.labels(self.project, labelled or name, component)
        labels[n.APPLYSET_MEMBER] = self.applyset
        return {"labels": labels, "name": name, "namespace": self.namespace}

    def plain_env(self, unit: AppUnit | TaskUnit, context: ProjectContext) -> dict[str, str]:
        endpoints = {d.app: n.service_url(d.app, self.namespace) for d in unit.depends_on}
        return unit_environment(context, unit, endpoints)


def parent(site: Site) -> Obj:
    """The ApplySet parent: a ConfigMap without data whose labels and annotations say which
    kinds its members are, so pruning lists exactly those."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "annotations": {
                n.APPLYSET_KINDS: ",".join(n.MEMBER_KINDS),
                n.APPLYSET_TOOLING: f"{n.MANAGER}/v{__version__}",
            },
            "labels": {
                n.APPLYSET_ID: site.applyset,
                n.COMPONENT: "applyset",
                n.MANAGED_BY: n.MANAGER,
                n.PART_OF: site.project,
            },
            "name": n.parent_name(site.project),
            "namespace": site.namespace,
        },
    }


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def secrets(site: Site, units: Iterable[AppUnit | TaskUnit], token: str) -> list[Obj]:
    """A Secret per secret granted to any of `units`, and the run API token's Secret."""
    values: dict[str, str] = {}
    for unit in units:
        values.update(unit.secrets)
    found = [(n.secret_name(name), "value", value, name) for name, value in values.items()]
    found.append((n.API_TOKEN_SECRET, "token", token, "engine-api-token"))
    return [
        {
            "apiVersion": "v1",
            "data": {key: _b64(value)},
            "kind": "Secret",
            "metadata": site.metadata(name, "secret", label),
            "type": "Opaque",
        }
        for name, key, value, label in sorted(found)
    ]


def bundle(site: Site, unit: AppUnit | TaskUnit) -> Obj:
    """The immutable ConfigMap of one version's bundle, named by the version's hash."""
    kind = unit.bundle.kind
    data = unit.bundle.archive()
    if len(data) > MAX_BUNDLE:
        raise UsageError(
            f"{kind} {unit.name!r}: its bundle is {len(data) / 1024:.0f} KiB zipped, over the "
            f"{MAX_BUNDLE // 1024} KiB a ConfigMap can carry; move large files (static assets, "
            "data) out of the spec's folder, or build an image that contains them "
            "(see docs/kubernetes.md, 'Bundles and images')"
        )
    meta = site.metadata(n.bundle_name(kind, unit.name, unit.hash), "bundle", unit.name)
    meta["annotations"] = {n.HASH: unit.hash, n.SECRETS: _secret_list(unit)}
    return {
        "apiVersion": "v1",
        "binaryData": {BUNDLE_KEY: base64.b64encode(data).decode("ascii")},
        "immutable": True,
        "kind": "ConfigMap",
        "metadata": meta,
    }


def _secret_list(unit: AppUnit | TaskUnit) -> str:
    return ",".join(sorted({n.secret_name(g.secret) for g in unit.grants}))


def service(site: Site, unit: AppUnit) -> Obj:
    """The app's stable address: port 80 of `<app>.<namespace>.svc`, to its pods' `http`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": site.metadata(unit.name, "app"),
        "spec": {
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
            "selector": n.selector(site.project, unit.name, "app"),
            "type": "ClusterIP",
        },
    }


def deployment(site: Site, unit: AppUnit, context: ProjectContext, bundle_name: str) -> Obj:
    """The app's Deployment: a rolling update that keeps every old pod until a new one is
    ready; the plan's hash on the pod template, so any change of version rolls the pods."""
    template_labels = n.selector(site.project, unit.name, "app")
    template_labels.update({n.PART_OF: site.project, n.VERSION: n.short(unit.hash)})
    meta = site.metadata(unit.name, "app")
    meta["annotations"] = {n.HASH: unit.hash, n.SECRETS: _secret_list(unit)}
    meta["labels"][n.APP_VERSION] = n.short(unit.hash)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "progressDeadlineSeconds": 300,
            "replicas": unit.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": n.selector(site.project, unit.name, "app")},
            "strategy": {
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                "type": "RollingUpdate",
            },
            "template": {
                "metadata": {"annotations": {n.HASH: unit.hash}, "labels": template_labels},
                "spec": app_pod(unit, site.image, bundle_name, site.plain_env(unit, context)),
            },
        },
    }


def app_objects(site: Site, unit: AppUnit, context: ProjectContext) -> list[Obj]:
    """An app's bundle ConfigMap, Service and Deployment, in the order they are applied."""
    config = bundle(site, unit)
    return [
        config,
        service(site, unit),
        deployment(site, unit, context, config["metadata"]["name"]),
    ]


def job(
    site: Site, unit: TaskUnit, context: ProjectContext, attempt: Attempt, bundle_name: str
) -> Obj:
    """The Job of one attempt: no retries (the runner owns them), the task's timeout as its
    deadline, removed an hour after it ends. Not an ApplySet member: no apply prunes it."""
    name = n.job_name(unit.name, attempt.run_id, attempt.number)
    labels = n.labels(site.project, unit.name, "task")
    labels[n.RUN] = n.run_hash(attempt.run_id)
    annotations = {n.ATTEMPT: str(attempt.number), n.HASH: unit.hash, n.RUN_ID: attempt.run_id}
    plain = site.plain_env(unit, context)
    plain.update(
        {
            "ENGINE_ATTEMPT": str(attempt.number),
            "ENGINE_RUN_ID": attempt.run_id,
            "ENGINE_RUN_INPUTS": json.dumps(dict(attempt.inputs), sort_keys=True),
        }
    )
    if attempt.run_url:
        plain["ENGINE_RUN_URL"] = attempt.run_url
    spec: Obj = {
        "backoffLimit": 0,
        "template": {
            "metadata": {"annotations": annotations, "labels": labels},
            "spec": task_pod(unit, site.image, bundle_name, plain),
        },
        "ttlSecondsAfterFinished": JOB_TTL,
    }
    if unit.timeout is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(unit.timeout))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "annotations": annotations,
            "labels": labels,
            "name": name,
            "namespace": site.namespace,
        },
        "spec": spec,
    }


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML without anchors: every object spelled out, as strict validators expect.
    libyaml's emitter when PyYAML has it: several times faster, the same bytes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(obj: Obj) -> bytes:
    """One object as one YAML document, keys sorted."""
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000)
    return f"---\n{text}".encode()


def file_name(obj: Obj) -> str:
    """`deployment-backend.yaml`; Jobs under `jobs/` so `kubectl apply -f DIR` skips them."""
    base = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
    return f"jobs/{base}" if obj["kind"] == "Job" else base


def objects(
    site: Site,
    apps: Sequence[AppUnit],
    tasks: Sequence[TaskUnit],
    context: ProjectContext,
) -> list[Obj]:
    """Every object of the project: parent, Secrets, per app and per task its objects."""
    result = [parent(site), *secrets(site, [*apps, *tasks], context.api_token)]
    for app in apps:
        result += app_objects(site, app, context)
    for task in tasks:
        example = Attempt(run_id="example", task=task.name, number=1, inputs={})
        config = bundle(site, task)
        result += [config, job(site, task, context, example, config["metadata"]["name"])]
    return result


def render_files(
    target: Target,
    apps: Mapping[str, AppUnit],
    tasks: Mapping[str, TaskUnit],
    context: ProjectContext,
) -> dict[str, bytes]:
    """Every object of the project as {file name: YAML bytes}, sorted by file name."""
    site = Site.of(target, context)
    found = objects(site, list(apps.values()), list(tasks.values()), context)
    return {name: data for name, data in sorted((file_name(o), to_yaml(o)) for o in found)}
