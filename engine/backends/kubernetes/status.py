"""Reading what the cluster says: a Deployment's rollout, a pod's trouble, a Job's end.

Pure functions of the API's JSON, so that each rule is tested on its own.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

STUCK = frozenset(
    {
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "RunContainerError",
    }
)
"""Waiting reasons that do not go away by waiting: a rollout or an attempt has failed."""


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type `kind`, if any."""
    for found in obj.get("status", {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def observed(deployment: Obj) -> bool:
    """Whether the controller has seen the current spec: its status is about this version."""
    seen = (deployment.get("status") or {}).get("observedGeneration", 0)
    return bool(seen >= deployment["metadata"].get("generation", 1))


def rolled_out(deployment: Obj) -> bool:
    """Whether every replica runs the current template and is available (old pods gone)."""
    status = deployment.get("status") or {}
    wanted = deployment.get("spec", {}).get("replicas", 1)
    available = condition(deployment, "Available")
    return (
        observed(deployment)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) >= wanted
        and status.get("replicas", 0) == wanted
        and available is not None
        and available.get("status") == "True"
    )


def deadline_exceeded(deployment: Obj) -> str | None:
    """The message of a rollout past its progress deadline, else None (also while the
    controller has not seen the current spec: the condition may be the last version's)."""
    progressing = condition(deployment, "Progressing") if observed(deployment) else None
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return str(progressing.get("message") or "ProgressDeadlineExceeded")
    return None


def pod_problem(pod: Obj) -> tuple[str, str] | None:
    """(container, reason) of a pod that cannot come up: a container stuck waiting (crash
    loop, image pull, bad config), or an init container that failed."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in STUCK:
                message = waiting.get("message")
                reason = f"{waiting['reason']}: {message}" if message else waiting["reason"]
                return container["name"], reason
            done = state.get("terminated") or {}
            if key == "initContainerStatuses" and done.get("exitCode", 0) != 0:
                return container["name"], f"{done.get('reason', 'Error')} (exit {done['exitCode']})"
    return None


def terminated(pod: Obj, container: str) -> str | None:
    """How `container` of a finished pod ended (`OOMKilled (exit 137)`), if it did."""
    for found in (pod.get("status") or {}).get("containerStatuses") or []:
        done = (found.get("state") or {}).get("terminated")
        if found.get("name") == container and done:
            return f"{done.get('reason', 'Error')} (exit {done.get('exitCode')})"
    return None


def job_end(job: Obj) -> str | None:
    """`complete`, `deadline` (past activeDeadlineSeconds), `failed`, or None if running."""
    for kind in ("Complete", "Failed"):
        found = condition(job, kind)
        if found and found.get("status") == "True":
            if kind == "Complete":
                return "complete"
            return "deadline" if found.get("reason") == "DeadlineExceeded" else "failed"
    return None
