"""The few Kubernetes API calls engine makes, with the official client, as plain JSON.

    cluster = Cluster("shop", context="prod")      # reads no kubeconfig yet
    await cluster.apply(obj)                       # server-side apply, field manager engine
    await cluster.list("Deployment", {"app.kubernetes.io/instance": "shop"})
    await cluster.delete("ConfigMap", "app-web-bundle-0123abcd")

The official client loads the kubeconfig (`ENGINE_KUBECONFIG`, else `KUBECONFIG`, else
~/.kube/config; or the in-cluster service account), authenticates and speaks TLS; engine
sends its own paths and bodies through it, so that an apply sends the very YAML that
`engine render` writes, as `application/apply-patch+yaml`. The client is synchronous:
each call runs in a thread. Every failure becomes an ApplyError naming the call, never a
traceback, and never a request body (a Secret's would hold values).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3

from engine.backends.kubernetes.manifests import to_yaml
from engine.backends.kubernetes.names import MANAGER
from engine.errors import ApplyError, UsageError

Obj = dict[str, Any]

KINDS = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Pod": ("/api/v1", "pods"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
}
"""Kind -> (API prefix, resource): every kind engine reads or writes, all namespaced."""

APPLY = "application/apply-patch+yaml"


class Cluster:
    """One namespace of one cluster; the kubeconfig is read on the first call."""

    def __init__(self, namespace: str, context: str | None = None) -> None:
        self.namespace = namespace
        self.context = context
        self._api: Any = None
        self._loading = threading.Lock()  # calls run in threads: load the kubeconfig once

    def _client(self) -> Any:
        with self._loading:
            if self._api is None:
                self._api = _load(self.context)
            return self._api

    def _path(self, kind: str, name: str | None = None) -> str:
        prefix, plural = KINDS[kind]
        path = f"{prefix}/namespaces/{self.namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: str | Obj | None = None,
        content_type: str = "application/json",
        stream: bool = False,
    ) -> Any:
        """One request; the response's JSON (or the raw response when `stream`), None on 404."""
        api = self._client()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        try:
            # The client never reads the body itself: a log can be streamed line by line.
            response = api.call_api(*params, _request_timeout=None if stream else 30)
        except urllib3.exceptions.HTTPError as exc:
            raise ApplyError(
                f"cannot reach the Kubernetes API at {api.configuration.host}: {exc}"
            ) from exc
        if response.status == 404:
            return None
        if stream and response.status < 300:
            return response.response
        data = response.read()
        if response.status >= 300:
            raise ApplyError(f"Kubernetes API: {method} {path}: {_reason(response.status, data)}")
        return json.loads(data) if data else {}

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply `obj` as field manager `engine`, taking over conflicting fields."""
        path = self._path(obj["kind"], obj["metadata"]["name"])
        query = [("fieldManager", MANAGER), ("force", True)]
        body = to_yaml(obj).decode()
        result: Obj = await asyncio.to_thread(self._call, "PATCH", path, query, body, APPLY)
        return result

    async def get(self, kind: str, name: str) -> Obj | None:
        """The object, or None if there is none."""
        result: Obj | None = await asyncio.to_thread(self._call, "GET", self._path(kind, name))
        return result

    async def select(self, kind: str, labels: Mapping[str, str]) -> list[Obj]:
        """The objects of `kind` carrying every label of `labels`, sorted by name."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(labels.items())))]
        found = await asyncio.to_thread(self._call, "GET", self._path(kind), query)
        items: list[Obj] = (found or {}).get("items", [])
        return sorted(items, key=lambda o: o["metadata"]["name"])

    async def delete(self, kind: str, name: str) -> bool:
        """Delete the object and, in the background, what it owns; False if it was gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        found = await asyncio.to_thread(self._call, "DELETE", self._path(kind, name), None, body)
        return found is not None

    async def log(self, pod: str, container: str, tail: int | None = None) -> list[str]:
        """The pod container's log lines (the last `tail` of them)."""
        query: list[tuple[str, Any]] = [("container", container)]
        if tail is not None:
            query.append(("tailLines", tail))
        path = f"{self._path('Pod', pod)}/log"
        response = await asyncio.to_thread(self._call, "GET", path, query, None, "text/plain", True)
        if response is None:
            return []
        data = await asyncio.to_thread(response.read)
        return data.decode("utf-8", "replace").splitlines()

    def follow(self, pod: str, container: str, tail: int) -> Iterator[str]:
        """The pod container's log lines, then new ones as they come (blocking)."""
        path = f"{self._path('Pod', pod)}/log"
        query = [("container", container), ("tailLines", tail), ("follow", True)]
        response = self._call("GET", path, query, None, "text/plain", True)
        if response is None:
            return
        try:
            for line in response:
                yield line.decode("utf-8", "replace").rstrip("\n")
        finally:
            response.release_conn()


def _reason(status: int, data: bytes) -> str:
    """The API's own message of an error response (a Status object), else the status."""
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{status} {message}" if message else str(status)


def _load(context: str | None) -> Any:
    """An ApiClient for `context` of the kubeconfig, or the pod's service account."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    path = os.environ.get("ENGINE_KUBECONFIG")
    try:
        if path is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
    except (ConfigException, OSError) as exc:
        where = f"context {context!r}" if context else "the current context"
        raise UsageError(
            f"cannot load the kubeconfig ({where}): {exc}; set ENGINE_KUBECONFIG or "
            "KUBECONFIG, or the target's `context:`"
        ) from exc
    return client.ApiClient(configuration)
