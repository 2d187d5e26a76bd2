"""The Ray backend against a real Ray head: Serve apps through the proxy, tasks as jobs.

One head for the session (tests/ray/head.py); each test deploys what it needs and removes
it again, so that the head's memory stays low.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from engine.backends.base import Attempt, AttemptHandle, DeployedState, Outcome
from engine.backends.ray.config import submission_id
from engine.backends.ray.dashboard import Dashboard
from tests.ray.conftest import (
    API_TOKEN,
    EXAMPLES,
    PROJECT,
    OnRay,
    copy_project,
    load,
    needs_ray,
    on_ray,
    run,
)
from tests.ray.head import Head

pytestmark = [pytest.mark.ray, needs_ray, pytest.mark.timeout(180)]


def pid_alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")


async def project_jobs(head: Head, project: str) -> list[dict]:
    dashboard = Dashboard(head.address, head.token)
    try:
        jobs = await dashboard.jobs()
    finally:
        await dashboard.close()
    return [j for j in jobs if (j.get("metadata") or {}).get("engine_project") == project]


def processes_in_packages(head: Head, wait: float = 15.0) -> list[str]:
    """The head's processes still working in an unpacked working_dir (after `wait`)."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for pid in head.session_pids():
            with contextlib.suppress(OSError):
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if "working_dir_files" in cwd:
                    found.append(f"{pid} in {cwd}")
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


async def deploy_times(head: Head) -> dict[str, float]:
    dashboard = Dashboard(head.address, head.token)
    try:
        apps = (await dashboard.serve_details())["applications"]
    finally:
        await dashboard.close()
    return {name: app["last_deployed_time_s"] for name, app in apps.items()}


@pytest.fixture(scope="module")
def raytest(head: Head, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the test project (tests change its files), its api app deployed."""
    spec = copy_project(PROJECT, tmp_path_factory.mktemp("raytest") / "project")

    async def deploy() -> None:
        project = on_ray(load(spec), head, spec.parent / ".engine" / "ray-dev")
        try:
            results = await project.apply()
            assert results["api"].state == DeployedState.RUNNING, results["api"].detail
        finally:
            await project.close()

    run(deploy())
    return spec


def project_on(spec: Path, head: Head) -> OnRay:
    return on_ray(load(spec), head, spec.parent / ".engine" / "ray-dev")


async def tasks_on(spec: Path, head: Head) -> OnRay:
    """The project with its tasks configured, as after the control plane's apply."""
    project = project_on(spec, head)
    await project.executor.configure(list(project.loaded.units.tasks.values()), {})
    return project


def test_app_calls_app_through_the_serve_proxy(head: Head, tmp_path: Path) -> None:
    async def scenario() -> None:
        project = on_ray(load(EXAMPLES / "app-calls-app" / "spec.yaml"), head, tmp_path)
        try:
            results = await project.apply()
            assert {n: d.state for n, d in results.items()} == {
                "backend": DeployedState.RUNNING,
                "frontend": DeployedState.RUNNING,
            }
            url = project.endpoints()["frontend"]
            assert url == f"http://127.0.0.1:{head.serve_port}/frontend"
            async with httpx.AsyncClient(timeout=10) as http:
                item = await http.get(f"{url}/api/items/2")
                assert item.json() == {"id": "2", "name": "teapot", "price": 18}
                assert (await http.get(f"{url}/summary")).status_code == 200
            seen = await project.backend.observe()
            assert {n: d.hash for n, d in seen.items()} == {n: d.hash for n, d in results.items()}
            deployed_at = await deploy_times(head)
            again = await project.apply()  # a no-op re-apply sends nothing
            assert {n: d.ok for n, d in again.items()} == {"backend": True, "frontend": True}
            assert await deploy_times(head) == deployed_at
            await project.backend.remove(["frontend", "backend"])
            assert await project.backend.observe() == {}
        finally:
            await project.close()

    run(scenario())


def test_task_calls_app_as_a_ray_job(head: Head, tmp_path: Path) -> None:
    async def scenario() -> None:
        project = on_ray(load(EXAMPLES / "task-calls-app" / "spec.yaml"), head, tmp_path)
        try:
            await project.apply()
            log = tmp_path / "run.log"
            attempt = Attempt("r-calls", "add-one", 1, {"x": 41}, log_path=str(log))
            result = await project.executor.run(attempt)
            assert (result.outcome, result.outputs) == (Outcome.SUCCEEDED, {"result": 42})
            assert "engine.backends.ray.job_entry tasks:add_one_task" in log.read_text()
            assert await project_jobs(head, "task-calls-app") == []  # forgotten once read
            await project.backend.remove(["add-one-app"])
        finally:
            await project.close()

    run(scenario())


def test_a_bearer_route_answers_401_then_200(head: Head, raytest: Path) -> None:
    base = f"http://127.0.0.1:{head.serve_port}/api"
    assert httpx.get(f"{base}/private", params={"who": "x"}).status_code == 401
    good = {"Authorization": "Bearer s3cret-value-of-api-token"}
    answer = httpx.get(f"{base}/private", params={"who": "x"}, headers=good)
    assert (answer.status_code, answer.json()) == (200, {"private": True, "who": "x"})


def test_websockets_static_files_and_logs_through_serve(head: Head, raytest: Path) -> None:
    base = f"127.0.0.1:{head.serve_port}/api"
    with connect(f"ws://{base}/echo", open_timeout=10) as socket:
        socket.send("over serve")
        assert socket.recv(timeout=10) == "Echo: over serve"
    static = httpx.get(f"http://{base}/files/hello.txt")
    assert (static.status_code, static.text) == (200, "hello from a static file\n")

    async def read_logs() -> list[str]:
        project = project_on(raytest, head)
        try:
            return [line async for line in project.backend.logs("api", tail=200)]
        finally:
            await project.close()

    lines = run(read_logs())
    assert all(line.endswith("\n") for line in lines)
    assert any("GET /api/health 200" in line for line in lines), lines[-5:]  # access log


def test_no_secret_reaches_the_dashboard_api(head: Head, raytest: Path) -> None:
    async def scenario() -> str:
        project = await tasks_on(raytest, head)
        try:
            attempt = Attempt("r-secret", "hello", 1, {"name": "ray"})
            result = await project.executor.run(attempt)
            assert result.outputs == {"greeting": "hello ray", "note_length": 20}
            dashboard = Dashboard(head.address, head.token)
            texts = [json.dumps(await dashboard.serve_details())]
            texts.append(json.dumps(await dashboard.jobs()))
            await dashboard.close()
            return "\n".join(texts)
        finally:
            await project.close()

    shown = run(scenario())
    assert "ENGINE_SECRETS_FILE" in shown
    for value in ["s3cret-value-of-api-token", "s3cret-value-of-note", API_TOKEN]:
        assert value not in shown


class Poller(threading.Thread):
    """Polls a URL until stopped, counting answers by their body (or the error)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.answers, self.failures = url, threading.Event(), {}, []

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                try:
                    response = http.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                body = response.text
                self.answers[body] = self.answers.get(body, 0) + 1
                time.sleep(0.01)


def write_version(spec: Path, text: str) -> None:
    (spec.parent / "handlers.py").write_text(text)


def test_a_code_change_rolls_out_with_no_failed_request(head: Head, raytest: Path) -> None:
    poller = Poller(f"http://127.0.0.1:{head.serve_port}/api/version")
    poller.start()
    try:
        write_version(raytest, "def version():\n    return {'version': 2}\n")
        project = project_on(raytest, head)

        async def rollout() -> DeployedState:
            try:
                results = await project.backend.deploy(
                    [project.loaded.units.apps["api"]], project.endpoints(), 90
                )
            finally:
                await project.close()
            return results["api"].state

        assert run(rollout()) == DeployedState.RUNNING
        time.sleep(0.5)
    finally:
        poller.stop.set()
        poller.join()
    assert poller.failures == []
    assert set(poller.answers) == {'{"version":1}', '{"version":2}'}
    assert httpx.get(poller.url).json() == {"version": 2}


def test_a_broken_version_fails_and_the_old_one_keeps_answering(head: Head, raytest: Path) -> None:
    url = f"http://127.0.0.1:{head.serve_port}/api/version"
    before = httpx.get(url).json()
    write_version(raytest, "raise RuntimeError('broken on purpose')\n")
    project = project_on(raytest, head)

    async def deploy_broken() -> tuple:
        try:
            unit = project.loaded.units.apps["api"]
            results = await project.backend.deploy([unit], project.endpoints(), 90)
            seen = await project.backend.observe()
            return results["api"], seen["api"], unit.hash
        finally:
            await project.close()

    failed, seen, broken_hash = run(deploy_broken())
    assert failed.state == DeployedState.FAILED
    assert "RuntimeError: broken on purpose" in failed.detail
    assert "Traceback" in failed.detail
    assert seen.hash != broken_hash  # Serve declares the last good version again
    for _ in range(20):
        assert httpx.get(url).json() == before
        time.sleep(0.1)
    write_version(raytest, "def version():\n    return {'version': 2}\n")


def test_a_run_that_raises_fails_after_retries_plus_one_attempts(
    head: Head, raytest: Path, tmp_path: Path
) -> None:
    async def scenario() -> list:
        project = await tasks_on(raytest, head)
        try:
            unit = project.loaded.units.tasks["boom"]
            results = []
            for number in range(1, unit.retries + 2):  # as the runner retries
                log = str(tmp_path / "boom.log")
                attempt = Attempt("r-boom", "boom", number, {}, log_path=log)
                results.append(await project.executor.run(attempt))
            return results
        finally:
            await project.close()

    results = run(scenario())
    assert [r.outcome for r in results] == [Outcome.FAILED] * 3
    assert {r.error for r in results} == {"RuntimeError: boom on purpose"}
    log = (tmp_path / "boom.log").read_text()
    assert log.count("about to fail") == 3
    assert "--- attempt 3 ---" in log and 'raise RuntimeError("boom on purpose")' in log


def start_sleepy(project: OnRay, tmp_path: Path, run_id: str) -> tuple[Attempt, Path]:
    pid_file = tmp_path / f"{run_id}.pid"
    inputs = {"pid_file": str(pid_file), "seconds": 120}
    return Attempt(run_id, "sleepy", 1, inputs), pid_file


async def wait_for(path: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} was never written"
        await asyncio.sleep(0.1)
    return int(path.read_text())


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_timeout_or_cancel_stops_the_job(
    head: Head, raytest: Path, tmp_path: Path, how: str
) -> None:
    async def scenario() -> tuple[int, str | None]:
        project = await tasks_on(raytest, head)
        try:
            attempt, pid_file = start_sleepy(project, tmp_path, f"r-{how}")
            running = asyncio.create_task(project.executor.run(attempt))
            pid = await wait_for(pid_file)
            handle = project.executor.handle(attempt.run_id)
            if how == "timeout":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(running, 0.5)
            else:
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
            return pid, handle.ref if handle else None
        finally:
            await project.close()

    pid, ref = run(scenario())
    assert ref == submission_id("raytest", f"r-{how}", 1)
    assert not pid_alive(pid)
    assert run(project_jobs(head, "raytest")) == []


CRASHING_CONTROL_PLANE = """
import asyncio, sys
from pathlib import Path
from engine.backends.base import Attempt
from tests.ray.conftest import load, on_ray
from tests.ray.head import Head

head = Head(0, sys.argv[1], int(sys.argv[2]), sys.argv[3], Path("."))
spec = Path(sys.argv[4])

async def main():
    project = on_ray(load(spec), head, spec.parent / ".engine" / "ray-dev")
    await project.executor.configure(list(project.loaded.units.tasks.values()), {})
    attempt = Attempt(sys.argv[6], "sleepy", 1, {"pid_file": sys.argv[5], "seconds": 3})
    await project.executor.run(attempt)

asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["reattach", "resubmit"])
def test_a_control_plane_killed_mid_run_is_recovered_with_no_second_job(
    head: Head, raytest: Path, tmp_path: Path, how: str
) -> None:
    pid_file = tmp_path / "crash.pid"
    argv = [sys.executable, "-c", CRASHING_CONTROL_PLANE, head.address, str(head.serve_port)]
    argv += [head.token, str(raytest), str(pid_file), f"r-crash-{how}"]
    crashing = subprocess.Popen(argv, cwd=Path(__file__).parents[2], start_new_session=True)
    try:
        job_pid = run(wait_for(pid_file))
    finally:
        os.kill(crashing.pid, 9)
        crashing.wait()
    submission = submission_id("raytest", f"r-crash-{how}", 1)

    async def recover() -> tuple:
        project = await tasks_on(raytest, head)
        try:
            jobs = await project_jobs(head, "raytest")
            inputs = {"pid_file": str(pid_file), "seconds": 3}
            attempt = Attempt(f"r-crash-{how}", "sleepy", 1, inputs)
            if how == "reattach":  # the runner's way, with the handle it stored
                handle = AttemptHandle.decode(f"ray-job:{submission}")
                result = await project.executor.reattach(attempt, handle)
            else:  # submitting the same attempt again finds the job instead of starting one
                result = await project.executor.run(attempt)
            gone = await project.executor.reattach(attempt, handle_of("engine-raytest-none-1"))
            return [j["submission_id"] for j in jobs], result, gone
        finally:
            await project.close()

    jobs, result, gone = run(recover())
    assert jobs == [submission]
    assert (result.outcome, result.outputs) == (Outcome.SUCCEEDED, {"slept": 3})
    assert int(pid_file.read_text()) == job_pid  # the job that ran is the first one
    assert gone is None
    assert run(project_jobs(head, "raytest")) == []


def handle_of(submission: str) -> AttemptHandle:
    return AttemptHandle("ray-job", submission)


def test_an_app_whose_route_prefix_is_taken_fails_and_changes_nothing(
    head: Head, raytest: Path, tmp_path: Path
) -> None:
    (tmp_path / "h.py").write_text("def f():\n    return {'other': True}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nproject: other\napps:\n  api:\n"
        "    routes:\n      - {method: GET, path: /version, handler: 'h:f'}\n"
    )

    async def deploy() -> tuple:
        other = on_ray(load(spec), head, tmp_path / "state")
        try:
            results = await other.backend.deploy(list(other.loaded.units.apps.values()), {}, 30)
            return results["api"], await other.backend.observe()
        finally:
            await other.close()

    failed, seen = run(deploy())
    assert failed.state == DeployedState.FAILED
    assert "the Serve config was not accepted" in failed.detail and "/api" in failed.detail
    assert seen == {}
    version = httpx.get(f"http://127.0.0.1:{head.serve_port}/api/version").json()
    assert "version" in version


def test_destroy_leaves_no_app_or_job_and_other_projects_alone(
    head: Head, raytest: Path, tmp_path: Path
) -> None:
    other = on_ray(load(EXAMPLES / "quickstart" / "spec.yaml"), head, tmp_path)

    async def scenario() -> tuple:
        try:
            await other.apply()
            project = await tasks_on(raytest, head)
            try:
                attempt, pid_file = start_sleepy(project, tmp_path, "r-destroy")
                running = asyncio.create_task(project.executor.run(attempt))
                await wait_for(pid_file)
                await project.executor.purge()
                result = await running
                await project.backend.remove(list(project.loaded.units.apps))
                left = await project.backend.observe(), await project_jobs(head, "raytest")
            finally:
                await project.close()
            stays = await other.backend.observe()
            await other.backend.remove(["hello"])
            return result, left, stays
        finally:
            await other.close()

    result, (apps, jobs), stays = run(scenario())
    assert result.outcome in (Outcome.LOST, Outcome.FAILED)
    assert (apps, jobs) == ({}, [])
    assert processes_in_packages(head) == []
    assert stays["hello"].state == DeployedState.RUNNING
    assert httpx.get(f"http://127.0.0.1:{head.serve_port}/api/version").status_code == 404
