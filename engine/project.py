"""The Python API of engine: what the CLI does, as calls that tests and programs can make.

    project = Project.at(Path("examples/quickstart"))            # or Project.find()
    plan = project.plan(Path("examples/quickstart/spec.yaml"))
    for event in project.apply(Path("examples/quickstart/spec.yaml")):
        print(event)
    project.status().apps
    run = project.run("add-one", {"x": 41}, wait=30)
    project.destroy()

Every method raises `EngineError` (positioned `SpecError` for a bad spec) and never prints.
A project is one target's: `Project.at(root, target="ray-dev")`. Commands that start
nothing (`plan`, `status` of a project that is not applied) need no control plane; the
others start one if it is not running. The control plane gets only the environment
variables the spec references (see `engine.client.environment`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ControlPlaneError, EngineError, StateError, UsageError
from engine.events import ApplyEvent, Status, event_from_json
from engine.layout import LOCAL, PROJECT_FILE, Layout
from engine.plan import Plan

NO_SPEC = "no such file; pass the spec (a file, or a folder holding spec.yaml)"

TARGET_VARIABLE = "ENGINE_TARGET"
"""The environment variable that picks a target when `--target` is not given."""


def default_target() -> str:
    """`$ENGINE_TARGET`, else `local`."""
    return os.environ.get(TARGET_VARIABLE) or LOCAL


@dataclass(frozen=True)
class Destroyed:
    """What `destroy` did: whether anything ran, and how many processes were found by the
    project's marker rather than through the state."""

    stopped: bool
    swept: int = 0


@dataclass(frozen=True)
class Project:
    """One project (the folder holding `.engine/`) on one target."""

    layout: Layout

    @classmethod
    def at(cls, root: Path, target: str | None = None) -> Project:
        """The project in folder `root` (its spec's folder)."""
        return cls(Layout(root.resolve(), target or default_target()))

    @classmethod
    def of_spec(cls, spec: Path, target: str | None = None) -> Project:
        """The project of a spec file: the folder it is in."""
        return cls.at(spec.resolve().parent, target)

    @classmethod
    def find(cls, directory: Path | None = None, target: str | None = None) -> Project:
        """The project in `directory` or its parents (like git finds `.git`)."""
        from engine.client import find_project

        return cls(Layout(find_project(directory).root, target or default_target()))

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def target(self) -> str:
        return self.layout.target

    # plan and apply

    def validate(self, spec: Path) -> Any:
        """Check `spec` (for this project's target); returns `engine.spec.Checked`."""
        from engine.load import check_spec

        return check_spec(spec, target=self.target)

    def plan(self, spec: Path) -> tuple[Plan, tuple[str, ...]]:
        """What apply would do now, and the spec's warnings.

        The same planner as apply: a running control plane is asked; otherwise it is run
        here, against the recorded state.
        """
        from engine.client import environment, live_control_plane

        info = live_control_plane(self.layout)
        if info is None:
            return self._plan_here(spec)
        payload = {"spec_path": str(spec.resolve()), "spec_label": str(spec)}
        answer = self._client(info).request(
            "POST", "/api/v1/plan", json={**payload, "environ": environment(spec)}
        )
        return Plan.from_dict(answer["plan"]), tuple(answer["warnings"])

    def _plan_here(self, spec: Path) -> tuple[Plan, tuple[str, ...]]:
        from engine.server.apply import prepare
        from engine.state import State

        if not spec.is_file():
            raise UsageError(f"{spec}: {NO_SPEC}")
        environ = dict(os.environ)
        if not self.layout.dir.is_dir():  # never applied: plan against an empty state
            from tempfile import TemporaryDirectory

            with TemporaryDirectory() as empty, State(Path(empty)) as state:
                prepared = prepare(spec, environ, state, str(spec), target=self.target)
        else:
            with State(self.layout.dir) as state:
                prepared = prepare(spec, environ, state, str(spec), target=self.target)
        return prepared.plan, prepared.warnings

    def apply(
        self,
        spec: Path,
        *,
        expect: Mapping[str, Any] | None = None,
        health_timeout: float = 30.0,
        wait_lock: bool = False,
    ) -> Iterator[ApplyEvent]:
        """Converge to `spec` (or refuse unless the plan is exactly `expect`); yield events.

        A spec that does not validate starts no control plane: its errors come as one
        `ErrorEvent`.
        """
        from engine.client import ensure_control_plane, environment, live_control_plane
        from engine.state import ApplyLock

        if not spec.is_file():
            raise UsageError(f"{spec}: {NO_SPEC}")
        if live_control_plane(self.layout) is None:
            self._check_before_starting(spec)  # its warnings come again from the control plane
            self._refuse_orphans()
        self.layout.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = ApplyLock(self.layout.dir, "engine apply")
        lock.acquire(wait=wait_lock)
        try:
            client = self._client(ensure_control_plane(self.layout, spec))
            payload = {
                "spec_path": str(spec.resolve()),
                "spec_label": str(spec),
                "environ": environment(spec),
                "expect": dict(expect) if expect is not None else None,
                "health_timeout": health_timeout,
            }
            for data in client.stream("/api/v1/apply", payload):
                yield event_from_json(data)
        finally:
            lock.release()

    def _refuse_orphans(self) -> None:
        """Refuse to start a second copy beside processes the state no longer knows of."""
        from engine.backends.local import find_marked

        if self.active:
            return  # the state knows them: a new control plane adopts them
        pids = find_marked(self.layout)
        if pids:
            shown = ", ".join(map(str, pids[:10])) + (", ..." if len(pids) > 10 else "")
            raise UsageError(
                f"processes of this project still run but its state does not know them "
                f"(pids {shown}): its .engine/ was damaged or deleted. Stop them with "
                f"`engine destroy {self.root}`, then apply again"
            )

    def _check_before_starting(self, spec: Path) -> None:
        """Validate and read secrets here, so that a bad spec never starts a control plane.

        A running control plane does the same checks itself (and answers the same errors),
        which spares a no-op apply loading the validator twice.
        """
        from engine.load import check_spec
        from engine.secrets import resolve_secrets

        resolve_secrets(check_spec(spec, target=self.target).spec)

    # what runs

    @property
    def active(self) -> bool:
        """Whether the project is applied (and not destroyed since), or its control plane runs."""
        from engine.client import is_active

        return is_active(self.layout)

    def status(self) -> Status:
        """The project's apps as they run (starting a control plane if it died)."""
        from engine.client import ensure_control_plane

        if not self.active:
            return Status(self.root.name, self.target)
        client = self._client(ensure_control_plane(self.layout))
        return Status.from_json(client.request("GET", "/api/v1/status"))

    def console_link(self) -> str | None:
        """A one-time link that signs a browser in to the running console, or None."""
        from engine.server.console_auth import console_link
        from engine.state import ControlPlaneInfo

        info = ControlPlaneInfo.read(self.layout.dir)
        return console_link(info.url, info.token) if info else None

    def logs(self, app: str, tail: int = 100, follow: bool = False) -> Iterator[str]:
        """An app's log lines, through the control plane (`control-plane`: the engine's)."""
        client = self._connected()
        params = {"tail": tail, "follow": "true" if follow else "false"}
        yield from client.lines(f"/api/v1/apps/{app}/logs", params)

    def destroy(self) -> Destroyed:
        """Stop every app, then the control plane.

        When the state cannot tell what runs (it was damaged, or `.engine/` was deleted),
        every process carrying the project's marker is ended instead.
        """
        from engine.backends.local import stop_marked
        from engine.client import ensure_control_plane
        from engine.state import ControlPlaneInfo

        if self.active:
            try:
                client = self._client(ensure_control_plane(self.layout))
                client.request("POST", "/api/v1/destroy")
                client.wait_exit()
                return Destroyed(True, stop_marked(self.layout))
            except (StateError, ControlPlaneError):
                pass  # the state is unreadable: find the processes by their marker
        swept = stop_marked(self.layout)
        if swept and self.layout.dir.is_dir():
            (self.layout.dir / PROJECT_FILE).unlink(missing_ok=True)
            ControlPlaneInfo.remove(self.layout.dir)
        return Destroyed(swept > 0, swept)

    # runs

    def task_inputs(self, task: str) -> dict[str, Any]:
        """The JSON Schemas of a task's inputs, by name (empty for an unknown task)."""
        tasks = self._connected().request("GET", "/api/v1/tasks")["tasks"]
        schema: dict[str, Any] = next((t["input_schema"] for t in tasks if t["name"] == task), {})
        return dict(schema.get("properties", {}))

    def run(self, task: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Start a run; returns it as the run API's JSON."""
        body = {"task": task, "inputs": dict(inputs)}
        run: dict[str, Any] = self._connected().request("POST", "/api/v1/runs", json=body)
        return run

    def wait(self, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once it is finished, or as it is after `timeout` seconds."""
        params = {"timeout": timeout}
        run: dict[str, Any] = self._connected().request(
            "GET", f"/api/v1/runs/{run_id}/wait", params=params
        )
        return run

    def runs(
        self, task: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The latest runs, newest first (read from the run store once nothing runs)."""
        if not self.active:
            return self._history(task, status, limit)
        params = {k: v for k, v in {"task": task, "status": status, "limit": limit}.items() if v}
        runs: list[dict[str, Any]] = self._connected().request(
            "GET", "/api/v1/runs", params=params
        )["runs"]
        return runs

    def run_logs(self, run_id: str) -> str:
        """What a run printed; EngineError naming `engine runs` for an unknown id."""
        if not self.active:
            found = self._history_run(run_id)
            path = Path(found.log_path) if found and found.log_path else None
            return path.read_text(errors="replace") if path and path.is_file() else ""
        try:
            return self._connected().text(f"/api/v1/runs/{run_id}/logs")
        except ControlPlaneError as exc:
            if "(HTTP 404)" in str(exc):
                raise EngineError(f"no run {run_id!r}; list them with `engine runs`") from exc
            raise

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; returns it."""
        run: dict[str, Any] = self._connected().request("POST", f"/api/v1/runs/{run_id}/cancel")
        return run

    # history: the run store stays after destroy, and is read without a control plane

    def _history(self, task: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        from engine.backends.base import RunStatus
        from engine.runs.api import run_json

        wanted = RunStatus(status) if status else None
        found = self._read_store(lambda store: store.list_runs(task, wanted, limit))
        return [run_json(run, self._console_url()) for run in found or []]

    def _history_run(self, run_id: str) -> Any:
        found = self._read_store(lambda store: store.get(run_id))
        if found is None:
            raise EngineError(f"no run {run_id!r}; list them with `engine runs`")
        return found

    def _read_store(self, query: Any) -> Any:
        """`query(store)` on the project's SQLite run store, if there is one."""
        import asyncio

        from engine.runs.store import open_store

        path = self.layout.dir / "runs.db"
        if not path.is_file():
            return None

        async def read() -> Any:
            store = open_store("", path)
            try:
                return await query(store)
            finally:
                await store.close()

        return asyncio.run(read())

    def _console_url(self) -> str:
        from engine.state import ControlPlaneInfo

        info = ControlPlaneInfo.read(self.layout.dir)
        return info.url if info else ""

    # plumbing

    def _connected(self) -> Any:
        from engine.client import connect

        return self._client(connect(self.layout))

    @staticmethod
    def _client(info: Any) -> Any:
        from engine.client import Client

        return Client(info)


def load_saved_plan(path: Path) -> tuple[Path, dict[str, Any]]:
    """A saved plan (`engine plan -o FILE`): the spec it was made for, and the plan."""
    try:
        data = json.loads(path.read_text())
        return Path(data["spec_path"]), data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path}: not a saved plan ({exc}); make one with `engine plan -o`"
        ) from exc
