"""What a pod runs, run here for real: the rendered init container unpacks the rendered
bundle ConfigMap, then the rendered container command starts, with the rendered env (secret
references resolved from the rendered Secrets, as the kubelet would). Only the paths are
moved under tmp_path and the app's address to 127.0.0.1 on a free port."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from engine.backends.kubernetes import render
from engine.backends.kubernetes.pods import BUNDLE_DIR, CODE_DIR, DATA_DIR
from tests.kubernetes.units import TARGET, example_units
from tests.runtime.conftest import free_port


class Pod:
    """One rendered pod spec, carried out as local processes under `root`."""

    def __init__(self, files: dict[str, bytes], pod_spec: dict[str, Any], root: Path) -> None:
        self.objects = {
            (o["kind"], o["metadata"]["name"]): o for o in map(yaml.safe_load, files.values())
        }
        self.spec = pod_spec
        self.root = root
        self.moves = {
            BUNDLE_DIR: str(root / "bundle"),
            CODE_DIR: str(root / "app"),
            DATA_DIR: str(root / "data"),
        }

    def _path(self, text: str) -> str:
        for old, new in self.moves.items():
            text = text.replace(old, new)
        return sys.executable if text == "python" else text

    def argv(self, container: dict[str, Any]) -> list[str]:
        return [self._path(part) for part in container["command"]]

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        env = {"PATH": os.environ["PATH"]}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = self._path(item["value"])
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                data = self.objects[("Secret", ref["name"])]["data"][ref["key"]]
                env[item["name"]] = base64.b64decode(data).decode()
        env["HOME"] = str(self.root)
        return env

    def unpack(self) -> None:
        """Mount the bundle ConfigMap (as files) and run the init container."""
        volume = next(v for v in self.spec["volumes"] if v["name"] == "bundle")
        config = self.objects[("ConfigMap", volume["configMap"]["name"])]
        (self.root / "bundle").mkdir()
        for key, data in config["binaryData"].items():
            (self.root / "bundle" / key).write_bytes(base64.b64decode(data))
        (init,) = self.spec["initContainers"]
        subprocess.run(self.argv(init), env=self.env({"env": []}), check=True)

    def main(self) -> dict[str, Any]:
        container: dict[str, Any] = self.spec["containers"][0]
        return container


def pod_of(example: str, kind: str, name: str, root: Path) -> Pod:
    units, context = example_units(example)
    files = render(TARGET, units, context)
    obj = next(
        yaml.safe_load(d)
        for d in files.values()
        if d.startswith(f"---\napiVersion: {'batch/v1' if kind == 'Job' else 'apps/v1'}\n".encode())
        and f"\n  name: {name}".encode() in d
    )
    pod = Pod(files, obj["spec"]["template"]["spec"], root)
    pod.unpack()
    return pod


@pytest.mark.parametrize(
    ("task", "status", "last"),
    [
        ("greet", 0, {"ok": True, "outputs": {"greeting": "Hello, k8s!"}}),
        ("fail", 1, {"ok": False, "error": "RuntimeError: this task always fails"}),
    ],
)
def test_a_task_pod_runs_its_handler_and_prints_the_result_last(
    tmp_path: Path, task: str, status: int, last: dict[str, Any]
) -> None:
    pod = pod_of("webhook-runner", "Job", task, tmp_path)
    container = pod.main()
    env = pod.env(container)
    inputs = {"name": "k8s"} if task == "greet" else {}
    env["ENGINE_RUN_INPUTS"] = json.dumps(inputs)
    done = subprocess.run(
        pod.argv(container),
        env=env,
        cwd=pod._path(container["workingDir"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == status, done.stderr
    line = done.stdout.splitlines()[-1]
    assert line.startswith("ENGINE_RESULT ")
    assert json.loads(line.removeprefix("ENGINE_RESULT ")) == last
    if status:
        assert "Traceback" in done.stderr  # the run's log keeps the traceback


@pytest.fixture
def app_pod(tmp_path: Path) -> Iterator[tuple[int, Pod]]:
    pod = pod_of("browser", "Deployment", "web", tmp_path)
    container = pod.main()
    port = free_port()
    argv = pod.argv(container)
    argv[argv.index("0.0.0.0")] = "127.0.0.1"
    argv[argv.index("8080")] = str(port)
    (tmp_path / "data").mkdir()
    process = subprocess.Popen(
        argv,
        env=pod.env(container),
        cwd=pod._path(container["workingDir"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, pod
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_app_pod_serves_its_health_route_and_static_files_from_the_bundle(
    app_pod: tuple[int, Pod],
) -> None:
    port, pod = app_pod
    probe = pod.main()["readinessProbe"]["httpGet"]["path"]
    deadline = time.monotonic() + 30
    while True:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert health.status_code == 200
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert page.status_code == 200 and "<html" in page.text.lower()
