"""The pod every app replica and every task attempt runs: one shape, two entry points.

    init container `bundle`:  python -m zipfile -e /engine/bundle/bundle.zip /srv/app
    container `app`|`task`:   the app's uvicorn (or its own command) | the task entry,
                              working directory /srv/app, read-only

Why unpack in an init container: the ConfigMap carries the bundle as one zip (compressed,
so more code fits under the 1 MiB object limit, and byte-identical to `Bundle.archive()`),
and the stdlib unzips it, so the pod needs nothing but the runtime image. The unpacked
folder is an `emptyDir` that the main container mounts read-only: the code a pod runs
cannot change under it, and its files are plain files (not the symlinks a ConfigMap
volume's keys are), so static folders and `include:` files behave as they do locally.

The security context is the Pod Security Standard "restricted" one: non-root, read-only
root filesystem, no capabilities, no privilege escalation, seccomp RuntimeDefault. The
only writable places are `emptyDir`s: /tmp, and the app's data dir (`ENGINE_DATA_DIR`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.backends.base import AppUnit, TaskUnit
from engine.backends.kubernetes.names import API_TOKEN_SECRET, secret_name

Obj = dict[str, Any]

APP_PORT = 8080
"""The container port of a generated app (a `port:` fixed in the spec wins)."""
USER_ID = 10001
BUNDLE_DIR = "/engine/bundle"
CODE_DIR = "/srv/app"
DATA_DIR = "/var/lib/engine"
SECRETS_DIR = "/var/run/engine/secrets"
BUNDLE_KEY = "bundle.zip"

_CONTAINER_SECURITY: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_POD_SECURITY: Obj = {
    "fsGroup": USER_ID,
    "runAsGroup": USER_ID,
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_RESOURCES: Obj = {"requests": {"cpu": "50m", "memory": "128Mi"}}


def container_port(unit: AppUnit) -> int:
    """The port the app's container listens on."""
    return unit.port or APP_PORT


def app_command(unit: AppUnit) -> list[str]:
    """How the app's container starts: uvicorn on its generated module, or its own command
    (with `{port}` filled in)."""
    port = str(container_port(unit))
    if unit.command is None:
        return ["python", "-m", "uvicorn", "_engine_app:app", "--app-dir", CODE_DIR,
                "--host", "0.0.0.0", "--port", port]  # fmt: skip
    if isinstance(unit.command, str):
        return ["/bin/sh", "-c", unit.command.replace("{port}", port)]
    return [part.replace("{port}", port) for part in unit.command]


def task_command(unit: TaskUnit) -> list[str]:
    """How a task attempt's container starts: the task entry, given the handler."""
    return ["python", "-m", "engine.backends.kubernetes.task", unit.handler]


def environment(unit: AppUnit | TaskUnit, plain: Mapping[str, str]) -> list[Obj]:
    """The container's env: plain values, then each granted secret (or its file's path)
    and the run API's token, both by reference to a Secret, never by value."""
    env = dict(plain)
    env.update({"ENGINE_DATA_DIR": DATA_DIR, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    # Reached by Service names and pod IPs (the kubelet's probes): not only loopback names.
    env.setdefault("ENGINE_ALLOWED_HOSTS", "*")
    env.update(
        {f"{g.variable}_FILE": f"{SECRETS_DIR}/{g.variable}" for g in unit.grants if g.as_file}
    )
    items: list[Obj] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    refs = {g.variable: (secret_name(g.secret), "value") for g in unit.grants if not g.as_file}
    refs["ENGINE_API_TOKEN"] = (API_TOKEN_SECRET, "token")
    items += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        for var, (name, key) in sorted(refs.items())
    ]
    return items


def _volumes(unit: AppUnit | TaskUnit, bundle: str) -> list[Obj]:
    volumes: list[Obj] = [
        {"name": "bundle", "configMap": {"name": bundle}},
        {"name": "code", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    files = [g for g in unit.grants if g.as_file]
    if files:
        sources = [
            {
                "secret": {
                    "name": secret_name(g.secret),
                    "items": [{"key": "value", "path": g.variable}],
                }
            }
            for g in sorted(files, key=lambda g: g.variable)
        ]
        volumes.append(
            {"name": "secret-files", "projected": {"defaultMode": 0o440, "sources": sources}}
        )
    return volumes


def _mounts(unit: AppUnit | TaskUnit) -> list[Obj]:
    mounts: list[Obj] = [
        {"name": "code", "mountPath": CODE_DIR, "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if any(g.as_file for g in unit.grants):
        mounts.append({"name": "secret-files", "mountPath": SECRETS_DIR, "readOnly": True})
    return mounts


def _unpack(image: str) -> Obj:
    return {
        "name": "bundle",
        "image": image,
        "command": ["python", "-m", "zipfile", "-e", f"{BUNDLE_DIR}/{BUNDLE_KEY}", CODE_DIR],
        "resources": _RESOURCES,
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
            {"name": "code", "mountPath": CODE_DIR},
        ],
    }


def _probe(path: str, period: int, failures: int) -> Obj:
    return {
        "failureThreshold": failures,
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
    }


def app_pod(unit: AppUnit, image: str, bundle: str, plain: Mapping[str, str]) -> Obj:
    """The pod spec of one app replica: probes on its health route, its port named `http`."""
    container = {
        "name": "app",
        "image": image,
        "command": app_command(unit),
        "env": environment(unit, plain),
        "livenessProbe": _probe(unit.health, 10, 3),
        "ports": [{"containerPort": container_port(unit), "name": "http", "protocol": "TCP"}],
        "readinessProbe": _probe(unit.health, 5, 2),
        "resources": _RESOURCES,
        "securityContext": _CONTAINER_SECURITY,
        # Up to 2 minutes to import and start before liveness may restart it.
        "startupProbe": _probe(unit.health, 2, 60),
        "volumeMounts": _mounts(unit),
        "workingDir": CODE_DIR,
    }
    return _pod(unit, image, bundle, container) | {"terminationGracePeriodSeconds": 30}


def task_pod(unit: TaskUnit, image: str, bundle: str, plain: Mapping[str, str]) -> Obj:
    """The pod spec of one task attempt: runs once (the runner owns retries)."""
    container = {
        "name": "task",
        "image": image,
        "command": task_command(unit),
        "env": environment(unit, plain),
        "resources": _RESOURCES,
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": _mounts(unit),
        "workingDir": CODE_DIR,
    }
    return _pod(unit, image, bundle, container) | {"restartPolicy": "Never"}


def _pod(unit: AppUnit | TaskUnit, image: str, bundle: str, container: Obj) -> Obj:
    return {
        # Pods never call the Kubernetes API, and Service links would add dozens of
        # variables (BACKEND_PORT, ...) that could shadow the declared env.
        "automountServiceAccountToken": False,
        "containers": [container],
        "enableServiceLinks": False,
        "initContainers": [_unpack(image)],
        "securityContext": _POD_SECURITY,
        "volumes": _volumes(unit, bundle),
    }
