"""Reading the cluster's answers: each rule on its own, on JSON shaped like the API's."""

from __future__ import annotations

from typing import Any

import pytest

from engine.backends.kubernetes import status


def pod(key: str, state: dict[str, Any], name: str = "app") -> dict[str, Any]:
    return {"status": {key: [{"name": name, "state": state}]}}


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (pod("containerStatuses", {"running": {}}), None),
        (pod("containerStatuses", {"waiting": {"reason": "ContainerCreating"}}), None),
        (
            pod("containerStatuses", {"waiting": {"reason": "CrashLoopBackOff"}}),
            ("app", "CrashLoopBackOff"),
        ),
        (
            pod(
                "containerStatuses",
                {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": 'secret "engine-secret-x" not found',
                    }
                },
            ),  # fmt: skip
            ("app", 'CreateContainerConfigError: secret "engine-secret-x" not found'),
        ),
        (
            pod(
                "initContainerStatuses",
                {"terminated": {"reason": "Error", "exitCode": 1}},
                "bundle",
            ),
            ("bundle", "Error (exit 1)"),
        ),
        (pod("initContainerStatuses", {"terminated": {"exitCode": 0}}, "bundle"), None),
        ({"status": {}}, None),
    ],
    ids=["running", "creating", "crash-loop", "config", "unpack-failed", "unpacked", "pending"],
)
def test_a_pod_that_cannot_come_up_is_told_by_its_reason(
    found: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    assert status.pod_problem(found) == expected


def deployment(generation: int, **fields: Any) -> dict[str, Any]:
    conditions = [{"type": "Available", "status": fields.pop("available", "True")}]
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "conditions": conditions, **fields},
    }


@pytest.mark.parametrize(
    ("found", "done"),
    [
        (deployment(2, replicas=2, updatedReplicas=2, availableReplicas=2), True),
        (deployment(3, replicas=2, updatedReplicas=2, availableReplicas=2), False),  # not seen yet
        (deployment(2, replicas=3, updatedReplicas=2, availableReplicas=3), False),  # old pod left
        (deployment(2, replicas=2, updatedReplicas=1, availableReplicas=2), False),
        (deployment(2, replicas=2, updatedReplicas=2, availableReplicas=1), False),
        (
            deployment(2, replicas=2, updatedReplicas=2, availableReplicas=2, available="False"),
            False,
        ),
    ],
    ids=["done", "unobserved", "old-pod", "not-updated", "not-available", "condition"],
)
def test_a_rollout_is_done_only_when_every_replica_is_new_and_available(
    found: dict[str, Any], done: bool
) -> None:
    assert status.rolled_out(found) is done


@pytest.mark.parametrize(
    ("conditions", "end"),
    [
        ([], None),
        ([{"type": "Complete", "status": "True"}], "complete"),
        ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "failed"),
        ([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], "deadline"),
        ([{"type": "Failed", "status": "False"}], None),
    ],
)
def test_a_jobs_end_is_read_from_its_conditions(conditions: list[Any], end: str | None) -> None:
    assert status.job_end({"status": {"conditions": conditions}}) == end


def test_a_past_versions_deadline_is_not_this_versions() -> None:
    exceeded = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "timed out"}  # fmt: skip
    status_of = {"observedGeneration": 4, "conditions": [exceeded]}
    stale: dict[str, Any] = {"metadata": {"generation": 5}, "status": status_of}
    assert status.deadline_exceeded(stale) is None
    stale["status"]["observedGeneration"] = 5
    assert status.deadline_exceeded(stale) == "timed out"
