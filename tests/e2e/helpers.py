"""Helpers for the example and browser end-to-end tests (the fixtures live in conftest.py).

An example is copied out of the repository into the project's temporary folder, applied
with the real CLI, and reached over 127.0.0.1 only, with clients that ignore proxy
variables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import EngineProject, base_env, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GITHUB_FIXTURES = REPO / "tests" / "fixtures" / "github"
HEALTH_TIMEOUT = "60"  # seconds each app may take to get healthy; generous for slow CI
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@contextmanager
def applied_example(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: Mapping[str, str] | None = None
) -> Iterator[EngineProject]:
    """Copy examples/NAME into a fresh folder, apply it as a user would; destroy it after.

    conftest's `shared_engine_project` lives as long as the module; this lives as long as
    the caller's fixture (a class), so only one example runs at a time. The teardown is
    conftest's: `engine destroy`, then every known pid checked, and killed (by pid) if alive.
    """
    project = EngineProject(tmp_path_factory.mktemp(name), base_env(**(env or {})))
    shutil.copytree(
        EXAMPLES / name,
        project.root,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", ".engine"),
    )
    try:
        project.ok("apply", "spec.yaml", "--timeout", HEALTH_TIMEOUT)
        yield project
    finally:
        leftovers = project.teardown()
    if leftovers:
        pytest.fail(f"{project.root}: still running after destroy: pids {leftovers}")


def app_urls(project: EngineProject) -> dict[str, str]:
    """App name -> URL, from `engine status --json`; every app must be running."""
    status = project.status()
    apps = {a["name"]: a for a in status["apps"]}
    assert all(a["state"] == "running" for a in apps.values()), status
    return {name: a["url"] for name, a in apps.items()}


def client(base_url: str = "", **kwargs: Any) -> httpx.Client:
    """An httpx client for 127.0.0.1: no proxies from the environment."""
    return httpx.Client(base_url=base_url, timeout=30, trust_env=False, **kwargs)


class RunApi:
    """The control plane's run API, with the project's token from .engine/control-plane.json."""

    def __init__(self, project: EngineProject) -> None:
        info = project.control_plane()
        assert info is not None, "no control plane is recorded"
        self.url = info["url"]
        self.headers = {"Authorization": f"Bearer {info['token']}"}

    def get(self, path: str, **params: Any) -> Any:
        """GET a path of the control plane; one short-lived client, so no socket is left."""
        with client(self.url, headers=self.headers) as http:
            response = http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def runs(self, task: str | None = None) -> list[dict[str, Any]]:
        return self.get("/api/v1/runs", limit=200, **({"task": task} if task else {}))["runs"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/runs/{run_id}")

    def finished(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """The run once it is in a final state (polling)."""
        return wait_for(
            lambda: (run := self.run(run_id))["status"] in FINAL and run, timeout=timeout
        )

    def ids(self, task: str | None = None) -> set[str]:
        return {r["id"] for r in self.runs(task)}

    def settled(self, task: str | None = None, quiet: float = 1.5) -> set[str]:
        """The run ids after `quiet` seconds: time for a wrongly started run to show up."""
        time.sleep(quiet)
        return self.ids(task)


# Signatures


def github_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256`: sha256= + hex HMAC-SHA256 of the exact bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(
    secret: str, event: str, body: bytes, delivery: str | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/e2e",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
    }


def github_payload(name: str) -> bytes:
    """A fixture's exact bytes (never re-serialised: that would break the signature)."""
    return (GITHUB_FIXTURES / name).read_bytes()


def new_whsec() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def standard_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
