"""Task attempts as Jobs, against the stub API server (no real one can run here): the test
plays the Job controller by setting a Job's conditions and its pod's log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.backends.base import Attempt, AttemptHandle, AttemptResult, Outcome, TaskExecutor
from engine.backends.kubernetes.jobs import JOB_NAME_LABEL, JobExecutor
from tests.kubernetes.conftest import backends
from tests.kubernetes.stub import Stub
from tests.kubernetes.units import example_units

EXAMPLE = "webhook-runner"


def attempt(task: str = "greet", run_id: str = "run_01JABCDEF", number: int = 1) -> Attempt:
    return Attempt(run_id=run_id, task=task, number=number, inputs={"name": "k8s"})


def executor(tmp_path: Path) -> JobExecutor:
    _, jobs = backends(EXAMPLE, tmp_path)
    units, _ = example_units(EXAMPLE)
    asyncio.run(jobs.configure(list(units.tasks.values()), {}))
    return jobs


def controller(stub: Stub) -> Callable[[Callable[[str], None]], Awaitable[str]]:
    """Wait for the first Job to be applied, then act on it (by name) like the cluster."""

    async def act(then: Callable[[str], None]) -> str:
        while not stub.names("jobs"):
            await asyncio.sleep(0.01)
        name = stub.names("jobs")[0]
        then(name)
        return name

    return act


def pod(stub: Stub, job: str, log: str, state: dict[str, Any] | None = None) -> None:
    name = f"{job}-pod"
    status = {"containerStatuses": [{"name": "task", "state": state or {}}]}
    stub.put(
        "pods", {"metadata": {"name": name, "labels": {JOB_NAME_LABEL: job}}, "status": status}
    )
    stub.logs[name] = log


def end(stub: Stub, job: str, kind: str, reason: str = "") -> None:
    condition = {"type": kind, "status": "True", "reason": reason}
    stub.set_status("jobs", job, {"conditions": [condition]})


def run_with(stub: Stub, jobs: JobExecutor, act: Callable[[str], None]) -> AttemptResult:
    async def main() -> AttemptResult:
        result, _ = await asyncio.gather(jobs.run(attempt()), controller(stub)(act))
        return result

    return asyncio.run(main())


def test_the_executor_is_a_task_executor_and_applies_the_attempts_job(
    stub: Stub, tmp_path: Path
) -> None:
    jobs = executor(tmp_path)
    assert isinstance(jobs, TaskExecutor)

    def succeed(name: str) -> None:
        pod(stub, name, 'hello\nENGINE_RESULT {"ok": true, "outputs": {"greeting": "hi k8s"}}\n')
        end(stub, name, "Complete")

    result = run_with(stub, jobs, succeed)
    assert result == AttemptResult(Outcome.SUCCEEDED, outputs={"greeting": "hi k8s"})
    job = next(r for r in stub.calls("PATCH") if r.resource.startswith("jobs/"))
    assert job.content_type == "application/apply-patch+yaml"
    assert job.query == {"fieldManager": "engine", "force": "true"}
    sent = yaml.safe_load(job.body)
    assert sent["metadata"]["annotations"]["engine.dev/run-id"] == "run_01JABCDEF"
    env = {
        e["name"]: e.get("value") for e in sent["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ENGINE_RUN_INPUTS"] == '{"name": "k8s"}'


def test_a_failed_handler_is_a_failed_attempt_with_its_error(stub: Stub, tmp_path: Path) -> None:
    def fail(name: str) -> None:
        result = 'ENGINE_RESULT {"ok": false, "error": "ValueError: boom"}'
        log = f"Traceback ...\nValueError: boom\n{result}\n"
        pod(stub, name, log, {"terminated": {"reason": "Error", "exitCode": 1}})
        end(stub, name, "Failed", "BackoffLimitExceeded")

    result = run_with(stub, executor(tmp_path), fail)
    assert result == AttemptResult(Outcome.FAILED, error="ValueError: boom")


def test_a_pod_killed_without_a_result_fails_with_its_termination_reason(
    stub: Stub, tmp_path: Path
) -> None:
    def killed(name: str) -> None:
        pod(stub, name, "working...\n", {"terminated": {"reason": "OOMKilled", "exitCode": 137}})
        end(stub, name, "Failed", "BackoffLimitExceeded")

    result = run_with(stub, executor(tmp_path), killed)
    assert result.outcome == Outcome.FAILED
    assert result.error is not None and result.error.endswith(
        "without a result: OOMKilled (exit 137)"
    )


def test_a_job_past_its_deadline_raises_timeout_error_for_the_runner(
    stub: Stub, tmp_path: Path
) -> None:
    with pytest.raises(TimeoutError, match="passed its deadline"):
        run_with(
            stub, executor(tmp_path), lambda name: end(stub, name, "Failed", "DeadlineExceeded")
        )


def test_a_job_deleted_behind_our_back_is_a_lost_attempt(stub: Stub, tmp_path: Path) -> None:
    def delete(name: str) -> None:
        with stub.lock:
            del stub.objects[("jobs", name)]

    result = run_with(stub, executor(tmp_path), delete)
    assert result.outcome == Outcome.LOST


def test_a_pod_that_cannot_pull_its_image_fails_the_attempt_and_deletes_the_job(
    stub: Stub, tmp_path: Path
) -> None:
    stuck = {"waiting": {"reason": "ImagePullBackOff", "message": 'pull "x" failed'}}
    result = run_with(stub, executor(tmp_path), lambda name: pod(stub, name, "", stuck))
    assert result == AttemptResult(
        Outcome.FAILED, error='the attempt\'s pod cannot start: ImagePullBackOff: pull "x" failed'
    )
    assert stub.names("jobs") == []


def test_cancelling_the_run_deletes_its_job(stub: Stub, tmp_path: Path) -> None:
    jobs = executor(tmp_path)

    async def main() -> None:
        task = asyncio.create_task(jobs.run(attempt()))
        name = await controller(stub)(lambda name: None)
        assert jobs.handle("run_01JABCDEF") == AttemptHandle("kubernetes-job", name)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [r.resource for r in stub.calls("DELETE")][-1].startswith("jobs/greet-")
    assert stub.names("jobs") == [] and jobs.handle("run_01JABCDEF") is None


def test_a_restarted_executor_reattaches_to_the_job_by_name(stub: Stub, tmp_path: Path) -> None:
    first = executor(tmp_path)

    async def start() -> AttemptHandle:
        task = asyncio.create_task(first.run(attempt()))
        await controller(stub)(lambda name: None)
        handle = first.handle("run_01JABCDEF")
        task.cancel()  # as a control plane dies: the Job itself would keep running
        await asyncio.gather(task, return_exceptions=True)
        return handle  # type: ignore[return-value]

    handle = asyncio.run(start())
    stub.put("jobs", {"metadata": {"name": handle.ref}, "spec": {}})  # still running there
    second = executor(tmp_path)

    async def reattach() -> AttemptResult | None:
        async def finish() -> None:
            await asyncio.sleep(0.1)
            pod(stub, handle.ref, 'ENGINE_RESULT {"ok": true, "outputs": 3}\n')
            end(stub, handle.ref, "Complete")

        result, _ = await asyncio.gather(second.reattach(attempt(), handle), finish())
        return result

    assert asyncio.run(reattach()) == AttemptResult(Outcome.SUCCEEDED, outputs=3)
    gone = AttemptHandle("kubernetes-job", "greet-0000000000000000-1")
    assert asyncio.run(second.reattach(attempt(), gone)) is None
    assert asyncio.run(second.reattach(attempt(), AttemptHandle("pid", "12:34"))) is None


def test_configure_prunes_the_bundles_of_task_versions_no_longer_there(
    stub: Stub, tmp_path: Path
) -> None:
    jobs = executor(tmp_path)
    units, _ = example_units(EXAMPLE)
    before = stub.names("configmaps")
    asyncio.run(jobs.configure([units.tasks["greet"]], {}))
    deleted = sorted(r.resource.split("/")[1] for r in stub.calls("DELETE"))
    assert deleted == sorted(
        b for b in before if b.startswith(("task-fail-", "task-slow-sum-", "task-process-order-"))
    )


def test_a_running_jobs_bundle_outlives_its_version_until_the_job_ends(
    stub: Stub, tmp_path: Path
) -> None:
    jobs = executor(tmp_path)
    greet = example_units(EXAMPLE)[0].tasks["greet"]
    old = next(b for b in stub.names("configmaps") if b.startswith("task-greet-bundle-"))

    async def main() -> None:
        run = asyncio.create_task(jobs.run(attempt()))
        name = await controller(stub)(lambda name: None)
        await jobs.configure([replace(greet, hash="f" * 64)], {})
        assert old in stub.names("configmaps")  # the Job's pod may not have started yet
        pod(stub, name, 'ENGINE_RESULT {"ok": true, "outputs": null}\n')
        end(stub, name, "Complete")
        await run
        await jobs.configure([replace(greet, hash="f" * 64)], {})
        assert old not in stub.names("configmaps")

    asyncio.run(main())


def test_inputs_too_big_for_a_pods_environment_fail_before_any_job(
    stub: Stub, tmp_path: Path
) -> None:
    jobs = executor(tmp_path)
    big = Attempt("run-big", "greet", 1, {"name": "x" * 200_000})
    result = asyncio.run(jobs.run(big))
    assert result.outcome == Outcome.FAILED
    assert result.error is not None and result.error.startswith("the run's inputs are 195 KiB")
    assert stub.names("jobs") == []
