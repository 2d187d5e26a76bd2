"""The backend seam: what the executor and the runner ask of a target, and the values they pass.

    Plan ─▶ Executor ─▶ Backend.deploy(level) / remove / observe / logs  (local|ray|kubernetes)
                     └▶ Runner ─▶ TaskExecutor.run(attempt) / reattach     (local|ray|kubernetes)
                              └▶ RunStore (async, compare-and-set)         (sqlite|postgresql)

A backend makes its target run one dependency level of the plan; it decides nothing about
what changes (the plan does). Every value crossing the seam is a frozen dataclass defined
here, so that a backend imports nothing from `engine.server` or `engine.runs`.

What every backend guarantees:

* `deploy()` keeps the old version of an app serving until the new one is healthy; a unit
  that fails comes back `failed`, with the reason and its log tail in `detail`, and the old
  version (if any) still serving.
* `observe()` is the target's truth, by hash: what runs there now, whatever the state file
  says.
* Secret values (`AppUnit.secrets`, `TaskUnit.secrets`) travel by the target's safest
  means and never appear in a log, an error message, or a config the target shows to
  others.
* `remove()` and `close()` leave nothing of the project behind that `remove()` was asked
  to remove; `close()` alone keeps apps running (a control plane may restart and adopt).

This module is imported by every backend and by the control plane: it imports nothing heavy.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from engine.errors import Diagnostic

MODULE_FILE = "_engine_app.py"
"""The generated module's file name inside a bundle (its module is `_engine_app`)."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# Bundles


@dataclass(frozen=True)
class Bundle:
    """Every file one version of an app or task runs, content-addressed by the plan's hash.

    `files` are paths relative to `root` (the spec's folder): handler modules and what they
    import, `include:` files, the static folder's files. `generated` is the app's generated
    module, written as `_engine_app.py` at the bundle's top.
    """

    name: str
    kind: Literal["app", "task"]
    hash: str
    root: Path
    files: tuple[str, ...] = ()
    generated: str | None = None

    def entries(self) -> list[tuple[str, bytes]]:
        """Every (relative path, bytes) of the bundle, sorted by path."""
        items = [(name, (self.root / name).read_bytes()) for name in self.files]
        if self.generated is not None:
            items.append((MODULE_FILE, self.generated.encode("utf-8")))
        return sorted(items)

    def digest(self) -> str:
        """sha256 over every entry's path and bytes: it changes exactly when a file does."""
        digest = hashlib.sha256()
        for name, data in self.entries():
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def write(self, folder: Path) -> Path:
        """Write the bundle into `folder` (idempotent: unchanged files are not rewritten)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.entries():
            target = folder / name
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return folder

    def archive(self) -> bytes:
        """The bundle as a zip: sorted, fixed times and modes, so the same files give the
        same bytes (for targets that ship code: Ray's working_dir, a ConfigMap)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.entries():
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return buffer.getvalue()


# Units: one version of an app or task, as a backend runs it


@dataclass(frozen=True)
class SecretGrant:
    """A secret given to a unit: as `variable`, or as a file whose path is in `variable_FILE`."""

    secret: str
    variable: str
    as_file: bool = False


@dataclass(frozen=True)
class Dependency:
    """An app this unit calls, and the variable its endpoint is injected as."""

    app: str
    variable: str


@dataclass(frozen=True)
class AppUnit:
    """One version of one app, everything a backend needs to run it.

    `env` is the declared environment (already interpolated). `secrets` maps each granted
    secret's name to its value: hidden from `repr`, delivered only as the target's safest
    means allows. `command` is set for `command:` apps (their bundle has no module);
    `{port}` in it is the app's port. `port` is a fixed port, or None.
    """

    name: str
    hash: str
    bundle: Bundle
    env: Mapping[str, str] = field(default_factory=dict)
    grants: tuple[SecretGrant, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    depends_on: tuple[Dependency, ...] = ()
    health: str = "/health"
    replicas: int = 1
    port: int | None = None
    command: tuple[str, ...] | str | None = None
    static_dir: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskUnit:
    """One version of one task: its handler, bundle, environment and limits.

    The runner validates inputs, queues, retries, times out and cancels; a task executor
    only carries out one attempt at a time per call. `input_schema` is the JSON Schema
    object of the task's inputs.
    """

    name: str
    hash: str
    handler: str
    bundle: Bundle
    env: Mapping[str, str] = field(default_factory=dict)
    grants: tuple[SecretGrant, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    depends_on: tuple[Dependency, ...] = ()
    retries: int = 0
    timeout: float | None = None
    concurrency: int = 2
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True)
class ProjectContext:
    """What every unit of a project is told about the engine: its name and the run API.

    `api_token` is a credential: a backend delivers it as `ENGINE_API_TOKEN` by the same
    means as a secret, never in a config its target shows to others.
    """

    project: str
    root: Path
    api_url: str
    api_token: str = field(repr=False)


def unit_environment(
    context: ProjectContext, unit: AppUnit | TaskUnit, endpoints: Mapping[str, str]
) -> dict[str, str]:
    """The non-secret environment every target gives `unit`: its declared `env`, the
    endpoint of each app it depends on (as the dependency's variable), and the engine's
    own variables. Targets add their base (PATH, HOME, ...), the secrets and the token."""
    env = dict(unit.env)
    reachable = {d.app: endpoints[d.app] for d in unit.depends_on if d.app in endpoints}
    env.update({d.variable: reachable[d.app] for d in unit.depends_on if d.app in reachable})
    own = "ENGINE_APP" if isinstance(unit, AppUnit) else "ENGINE_TASK"
    env.update(
        {
            "ENGINE_PROJECT": context.project,
            own: unit.name,
            "ENGINE_API_URL": context.api_url,
            "ENGINE_ENDPOINTS": json.dumps(dict(sorted(reachable.items()))),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# What a target runs


class DeployedState(enum.StrEnum):
    """The states an app can be in on any target (as `engine status` shows them)."""

    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Deployed:
    """One app as its target runs it: the hash it serves, its state, its URL, and why.

    `detail` says what went wrong (a failed deploy's reason and log tail). `pid` and
    `restarts` are the local backend's; other targets leave them None and 0.
    """

    name: str
    hash: str
    state: DeployedState
    url: str | None = None
    detail: str = ""
    pid: int | None = None
    port: int | None = None
    restarts: int = 0

    @property
    def ok(self) -> bool:
        """Whether the app serves (running, or still starting)."""
        return self.state in (DeployedState.RUNNING, DeployedState.STARTING)

    def to_dict(self) -> dict[str, object]:
        """As `engine status --json` shows an app."""
        return {
            "name": self.name,
            "state": str(self.state),
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "restarts": self.restarts,
            "detail": self.detail,
        }


Locate = Callable[[tuple[str | int, ...], str], Diagnostic]
"""Positions a problem found by a backend's `check()`: (json path, message) -> Diagnostic."""


@runtime_checkable
class Backend(Protocol):
    """Runs a project's apps on one target. Chosen by the target's `backend:` name; what a
    target cannot run is its package's `check()` (see `engine.backends`), at validate."""

    name: str
    stable_endpoints: bool
    """True when an app keeps its URL across replacements, so dependents need no restart."""

    async def observe(self) -> dict[str, Deployed]:
        """What the target runs now, by app name."""
        ...

    async def deploy(
        self, units: Sequence[AppUnit], endpoints: Mapping[str, str], timeout: float
    ) -> dict[str, Deployed]:
        """Run `units` (one dependency level), given the current URL of every app; wait up to
        `timeout` seconds for each to be healthy. A failed unit keeps its old version."""
        ...

    async def remove(self, names: Sequence[str]) -> None:
        """Stop and forget these apps."""
        ...

    def logs(self, name: str, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The app's log lines (the last `tail`, then new ones if `follow`)."""
        ...

    async def close(self) -> None:
        """Release the backend's resources; apps keep running."""
        ...


# Task attempts


@dataclass(frozen=True)
class Attempt:
    """One attempt of one run, as the runner hands it to a task executor."""

    run_id: str
    task: str
    number: int
    inputs: Mapping[str, Any]
    log_path: str | None = None
    run_url: str | None = None


class Outcome(enum.StrEnum):
    """How an attempt ended, as far as the executor can tell."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"


@dataclass(frozen=True)
class AttemptResult:
    """The end of one attempt: outputs on success, else an error (`Type: message`)."""

    outcome: Outcome
    outputs: Any = None
    error: str | None = None


@dataclass(frozen=True)
class AttemptHandle:
    """Where a running attempt runs, recorded so that a restarted control plane can find it:
    a local worker's pid and start time, a Ray job's submission id, a Kubernetes Job name."""

    kind: str
    ref: str

    def encode(self) -> str:
        """As stored beside the run: `kind:ref`."""
        return f"{self.kind}:{self.ref}"

    @classmethod
    def decode(cls, text: str) -> AttemptHandle:
        """The handle stored as `kind:ref`."""
        kind, _, ref = text.partition(":")
        return cls(kind, ref)


@runtime_checkable
class TaskExecutor(Protocol):
    """Carries out task attempts on one target; the runner owns everything else."""

    name: str

    async def configure(self, units: Sequence[TaskUnit], endpoints: Mapping[str, str]) -> None:
        """Make these the tasks it can run, given the current URL of every app; a changed
        hash gets fresh workers (attempts already running finish on the old ones)."""
        ...

    async def run(self, attempt: Attempt) -> AttemptResult:
        """Carry out one attempt and return how it ended. Cancelling the call stops the
        attempt wherever it runs; TimeoutError means the target ended it at its deadline
        (the task's timeout), and the run is recorded `timed_out`."""
        ...

    def handle(self, run_id: str) -> AttemptHandle | None:
        """Where the attempt of `run_id` runs now, if it has started."""
        ...

    async def reattach(self, attempt: Attempt, handle: AttemptHandle) -> AttemptResult | None:
        """After a control-plane restart: wait for an attempt that still runs at `handle` and
        return how it ended, or None if it is not running there (it never started, or is
        gone without a result)."""
        ...

    async def close(self) -> None:
        """Stop every attempt and worker it started."""
        ...


# Runs and the run store


class RunStatus(enum.StrEnum):
    """The states of a run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})
"""The states a run never leaves."""


@dataclass(frozen=True)
class NewRun:
    """A run to create: its task, validated inputs and how many attempts it may have.

    With `key`, at most one run per `(task, key)` is created within `key_ttl` seconds (a
    webhook delivery id); a second submission gets the first run back. `request_id` is the
    `X-Request-ID` of the request that asked for it, kept in its record.
    """

    task: str
    inputs: Mapping[str, Any]
    max_attempts: int = 1
    key: str | None = None
    key_ttl: float | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Run:
    """One run of a task, as stored. Times are Unix seconds.

    `handle` is where its current attempt runs (`AttemptHandle.encode()`), once started;
    `request_id` the request id of the request that started it, if one did.
    """

    id: str
    task: str
    status: RunStatus
    inputs: dict[str, Any]
    outputs: Any
    error: str | None
    attempts: int
    max_attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    log_path: str | None
    handle: str | None = None
    request_id: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final state."""
        return self.status in FINAL


@dataclass(frozen=True)
class Created:
    """A submission's run, and whether this submission created it (False: a duplicate key)."""

    run: Run
    created: bool = True


@runtime_checkable
class RunStore(Protocol):
    """Where runs live. Every state change is a compare-and-set that returns the changed run,
    or None when the run was not in the expected state (so two writers never both win); a
    run is committed before any method that creates or changes it returns."""

    async def create_many(
        self, items: Sequence[NewRun], *, logs_dir: Path | None = None
    ) -> list[Created]:
        """Store queued runs in one transaction (all or none), in order."""
        ...

    async def get(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        ...

    async def list_runs(
        self, task: str | None = None, status: RunStatus | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs, newest first, optionally of one task and/or in one state."""
        ...

    async def unfinished(self) -> list[Run]:
        """Queued and running runs, oldest first."""
        ...

    async def start_attempt(self, run_id: str) -> Run | None:
        """queued → running, counting one more attempt; None unless it was queued."""
        ...

    async def set_handle(self, run_id: str, handle: str | None) -> Run | None:
        """Record where the running attempt runs; None unless the run is running."""
        ...

    async def requeue(self, run_id: str, error: str) -> Run | None:
        """running → queued (to be retried), keeping the error; None unless it was running."""
        ...

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        outputs: Any = None,
        error: str | None = None,
        expect: frozenset[RunStatus] = frozenset({RunStatus.RUNNING}),
    ) -> Run | None:
        """Put the run in the final `status` if it is in one of `expect`; else None."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...
