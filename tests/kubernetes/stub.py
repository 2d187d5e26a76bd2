"""A stand-in Kubernetes API server: no real one can run on this project's machines.

A real HTTP server on 127.0.0.1 that answers the calls engine makes the way the API server
does (server-side apply, get, list by label, delete, pod logs) and records every request,
so a test asserts exactly what was sent. It stores objects; it runs nothing: a test plays
the controllers by setting an object's status (`make_available`, `finish_job`, ...).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "stub-bearer-token"

Obj = dict[str, Any]


@dataclass
class Request:
    """One request as the stub received it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    authorization: str
    body: bytes

    @property
    def resource(self) -> str:
        """`deployments/backend`: the path's last two parts."""
        return "/".join(self.path.split("/")[-2:])


@dataclass
class Stub:
    """The stub's objects by (resource, name), its request log and pod logs by pod name."""

    namespace: str
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    auto_available: bool = True
    """Whether an applied Deployment is available at once (else a test makes it so)."""
    forbidden: set[str] = field(default_factory=set)
    """Resources (`secrets`) whose writes are answered 403, as RBAC would."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, method: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method]

    def names(self, resource: str) -> list[str]:
        with self.lock:
            return sorted(name for (res, name) in self.objects if res == resource)

    def put(self, resource: str, obj: Obj) -> None:
        """Add an object as if something else had created it."""
        obj["metadata"].setdefault("namespace", self.namespace)
        with self.lock:
            self.objects[(resource, obj["metadata"]["name"])] = obj

    def set_status(self, resource: str, name: str, status: Obj) -> None:
        with self.lock:
            self.objects[(resource, name)]["status"] = status

    def make_available(self, name: str) -> None:
        """Play the Deployment controller: every replica updated and available."""
        with self.lock:
            obj = self.objects[("deployments", name)]
            obj["status"] = available(obj)


def available(deployment: Obj) -> Obj:
    """The status of a Deployment whose every replica is updated and available."""
    replicas = deployment["spec"].get("replicas", 1)
    return {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def _matches(obj: Obj, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _status(code: int, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "message": message}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> tuple[Request, list[str]]:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command,
            url.path,
            {k: v[-1] for k, v in parse_qs(url.query).items()},
            self.headers.get("Content-Type", ""),
            self.headers.get("Authorization", ""),
            self.rfile.read(length),
        )
        stub = self.server.stub
        with stub.lock:
            stub.requests.append(request)
        parts = url.path.strip("/").split("/")
        # /api/v1/namespaces/NS/RES[/NAME[/log]] or /apis/GROUP/v1/namespaces/NS/RES[/NAME]
        rest = parts[parts.index("namespaces") + 2 :]
        return request, rest

    def _send(self, code: int, body: Obj | str) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        kind = "text/plain" if isinstance(body, str) else "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self, request: Request) -> bool:
        if request.authorization != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized"))
            return False
        return True

    def do_GET(self) -> None:
        request, rest = self._record()
        if not self._authorised(request):
            return
        stub = self.server.stub
        with stub.lock:
            if len(rest) == 3 and rest[2] == "log":
                if ("pods", rest[1]) not in stub.objects:
                    return self._send(404, _status(404, f'pods "{rest[1]}" not found'))
                lines = stub.logs.get(rest[1], "").splitlines(keepends=True)
                tail = int(request.query.get("tailLines", len(lines)))
                return self._send(200, "".join(lines[-tail:] if tail else []))
            if len(rest) == 2:
                found = stub.objects.get((rest[0], rest[1]))
                if found is None:
                    return self._send(404, _status(404, f'{rest[0]} "{rest[1]}" not found'))
                return self._send(200, found)
            selector = request.query.get("labelSelector", "")
            items = [copy.deepcopy(o) for (res, _), o in sorted(stub.objects.items())
                     if res == rest[0] and _matches(o, selector)]  # fmt: skip
            return self._send(200, {"kind": "List", "items": items})

    def do_PATCH(self) -> None:
        request, rest = self._record()
        if not self._authorised(request):
            return
        if rest[0] in self.server.stub.forbidden:
            message = f'{rest[0]} "{rest[1]}" is forbidden: User "ci" cannot patch resource'
            return self._send(403, _status(403, message))
        if request.content_type != "application/apply-patch+yaml":
            return self._send(415, _status(415, f"unsupported patch type {request.content_type}"))
        if "fieldManager" not in request.query:
            return self._send(422, _status(422, "fieldManager is required for apply requests"))
        obj = yaml.safe_load(request.body)
        stub = self.server.stub
        with stub.lock:
            key = (rest[0], rest[1])
            old = stub.objects.get(key)
            if (
                old is not None
                and old.get("immutable")
                and old.get("binaryData") != obj.get("binaryData")
            ):
                return self._send(422, _status(422, f"{key}: field is immutable"))
            meta = obj["metadata"]
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            changed = old is None or old.get("spec") != obj.get("spec")
            meta["generation"] = generation + 1 if changed else generation
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            obj["status"] = (old or {}).get("status", {}) if not changed else {}
            if rest[0] == "deployments" and stub.auto_available:
                obj["status"] = available(obj)
            stub.objects[key] = obj
            return self._send(200, obj)

    def do_DELETE(self) -> None:
        request, rest = self._record()
        if not self._authorised(request):
            return
        stub = self.server.stub
        with stub.lock:
            found = stub.objects.pop((rest[0], rest[1]), None)
            if found is None:
                return self._send(404, _status(404, f'{rest[0]} "{rest[1]}" not found'))
            if rest[0] == "jobs":  # background propagation: the Job's pods go too
                for key, obj in list(stub.objects.items()):
                    labels = obj["metadata"].get("labels") or {}
                    if key[0] == "pods" and labels.get("batch.kubernetes.io/job-name") == rest[1]:
                        del stub.objects[key]
            return self._send(200, {"kind": "Status", "status": "Success"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: Stub


def serve(namespace: str) -> tuple[_Server, Stub]:
    """Start a stub API server on a free port of 127.0.0.1, in a thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stub = Stub(namespace)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, server.stub


def kubeconfig(path: Path, port: int, context: str = "stub") -> Path:
    """A kubeconfig whose `context` points at the stub with its bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "stub", "user": {"token": TOKEN}}],
        "contexts": [{"name": context, "context": {"cluster": "stub", "user": "stub"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config))
    return path
