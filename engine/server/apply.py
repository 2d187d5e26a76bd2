"""Carry out a plan on the local backend: start, replace and stop apps; configure tasks.

Apps start level by level (a level's apps in parallel, each after its dependencies are
healthy). An app that fails its health check leaves its previous version serving, and
the apps that depend on it are skipped. Every step is reported as an event dict, which
the control plane streams to the CLI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.local.tasks import LocalTaskExecutor
from engine.compiler import Build, compile_spec, write_module
from engine.errors import ApplyError, EngineError, SpecError
from engine.layout import Layout
from engine.plan import Plan, Recorded, Step, make_plan
from engine.runs.runner import Runner
from engine.secrets import resolve_secrets
from engine.server.launch import ControlPlaneAddress, app_process, base_env
from engine.server.supervisor import ProcessSpec, Supervisor
from engine.spec import check_spec
from engine.state import State
from engine.units import task_unit

Emit = Callable[[dict[str, Any]], Awaitable[None]]
PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class Prepared:
    """A spec made ready to apply: compiled, its secrets read, its plan computed."""

    build: Build
    secrets: dict[str, str]
    plan: Plan
    warnings: tuple[str, ...] = ()


def recorded(state: State) -> tuple[dict[str, Recorded], dict[str, Recorded]]:
    """The state's apps and tasks as the planner sees them."""
    apps = {r.name: Recorded(r.hash, r.port, r.state) for r in state.apps()}
    tasks = {name: Recorded(h) for name, h in state.tasks().items()}
    return apps, tasks


def prepare(
    spec_path: Path, environ: Mapping[str, str], state: State, label: str | None = None
) -> Prepared:
    """Validate, compile and plan `spec_path` against `state`; read its secrets.

    Diagnostics name the spec as `label` (the path the user typed), if given.
    """
    checked = check_spec(spec_path, environ, label=label)
    build = compile_spec(checked.spec)
    secrets = resolve_secrets(checked.spec, environ)
    apps, tasks = recorded(state)
    plan = make_plan(build, secrets, apps, tasks)
    return Prepared(build, secrets, plan, tuple(str(w) for w in checked.warnings))


class Applier:
    """Applies specs for one project; one apply at a time."""

    def __init__(
        self,
        layout: Layout,
        state: State,
        supervisor: Supervisor,
        runner: Runner,
        executor: LocalTaskExecutor,
        api: ControlPlaneAddress,
    ) -> None:
        self.layout = layout
        self.state = state
        self.supervisor = supervisor
        self.runner = runner
        self.executor = executor
        self.api = api
        self.lock = asyncio.Lock()

    async def apply(
        self,
        spec_path: Path,
        environ: Mapping[str, str],
        emit: Emit,
        *,
        expect: Mapping[str, Any] | None = None,
        health_timeout: float = 30.0,
        label: str | None = None,
    ) -> bool:
        """Converge to `spec_path`; emit progress; return whether every app is healthy."""
        async with self.lock:
            try:
                prepared = prepare(spec_path, environ, self.state, label)
            except SpecError as exc:
                await emit({"event": "error", "errors": [str(d) for d in exc.diagnostics]})
                return False
            except EngineError as exc:
                await emit({"event": "error", "errors": [str(exc)]})
                return False
            plan = prepared.plan
            if prepared.warnings:
                await emit({"event": "warnings", "warnings": list(prepared.warnings)})
            # A saved plan is carried out only if it is still exactly what would be done:
            # the steps' hashes cover the spec, the handlers' sources and the secrets.
            if expect is not None and json.loads(json.dumps(plan.to_dict())) != expect:
                message = (
                    "the saved plan is stale: the spec, its source files, its secrets or "
                    "the running system changed since it was made; run `engine plan -o FILE` "
                    "again"
                )
                await emit({"event": "error", "errors": [message]})
                return False
            await emit({"event": "plan", "plan": plan.to_dict(), "text": plan.render()})
            apply_id = self.state.begin_apply(plan.spec_sha256)
            ok = await self._execute(prepared, environ, emit, health_timeout)
            (self.layout.dir / PROJECT_FILE).write_text(
                json.dumps({"spec_path": str(spec_path), "project": plan.project})
            )
            summary = json.dumps(plan.counts())
            self.state.finish_apply(apply_id, "ok" if ok else "failed", summary)
            await emit({"event": "done", "ok": ok, "apps": self.supervisor.status()})
            return ok

    async def _execute(
        self, prepared: Prepared, environ: Mapping[str, str], emit: Emit, health_timeout: float
    ) -> bool:
        plan = prepared.plan
        failed: set[str] = set()
        app_steps = [s for s in plan.steps if s.kind == "app" and s.action != "delete"]
        for level in sorted({s.level for s in app_steps}):
            batch = [s for s in app_steps if s.level == level and s.action != "unchanged"]
            results = await asyncio.gather(
                *(self._app_step(s, prepared, environ, emit, failed, health_timeout) for s in batch)
            )
            failed.update(s.name for s, ok in zip(batch, results, strict=True) if not ok)
        for step in plan.steps:
            if step.action == "delete":
                await self._delete(step, emit)
        await self.configure_tasks(prepared, environ, emit)
        return not failed

    async def _app_step(
        self,
        step: Step,
        prepared: Prepared,
        environ: Mapping[str, str],
        emit: Emit,
        failed: set[str],
        health_timeout: float,
    ) -> bool:
        blocked = [d for d in step.depends_on if d in failed]
        if blocked:
            await emit(_step_event(step, "skipped", error=f"dependency {blocked[0]} failed"))
            return False
        spec = self.process_spec(prepared, step.name, environ, health_timeout)
        ours = self.url(step.name) == f"http://127.0.0.1:{spec.port}"
        if spec.port is not None and not ours and port_taken(spec.port):
            message = (
                f"port {spec.port} of app {step.name!r} is in use by another program; "
                "stop that program or give the app another `port:`"
            )
            await emit(_step_event(step, "failed", error=message))
            return False
        await emit(_step_event(step, "starting"))
        try:
            await self.supervisor.replace(spec)  # starts an app it does not run yet
        except ApplyError as exc:
            await emit(_step_event(step, "failed", error=str(exc)))
            return False
        self._prune_builds(step.name, spec)
        await emit(_step_event(step, "running", url=self.url(step.name)))
        return True

    def process_spec(
        self, prepared: Prepared, name: str, environ: Mapping[str, str], health_timeout: float
    ) -> ProcessSpec:
        """How to run app `name` now, with its dependencies' current endpoints."""
        build = prepared.build
        app = build.spec.apps[name]
        desired = prepared.plan.desired_hash("app", name)
        folder = self.layout.app_build(name, desired)
        source = build.apps[name].source
        if source is not None:
            write_module(source, folder)
        return app_process(
            build.spec,
            app,
            desired_hash=desired,
            build_dir=folder,
            layout=self.layout,
            environ=environ,
            secrets=prepared.secrets,
            endpoints=self.endpoints(app.depends_on),
            api=self.api,
            health_timeout=health_timeout,
        )

    def url(self, name: str) -> str | None:
        """The app's current URL, if it runs."""
        return next((a["url"] for a in self.supervisor.status() if a["name"] == name), None)

    def endpoints(self, names: tuple[str, ...]) -> dict[str, str]:
        """The current URL of each named app that runs."""
        urls = {name: self.url(name) for name in names}
        return {name: url for name, url in urls.items() if url}

    def _prune_builds(self, name: str, current: ProcessSpec) -> None:
        """Remove the build folders of an app's versions that no longer run."""
        keep = self.layout.app_build(name, current.hash)
        folder = self.layout.build / name
        for old in folder.iterdir() if folder.is_dir() else ():
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    async def _delete(self, step: Step, emit: Emit) -> None:
        await emit(_step_event(step, "stopping"))
        if step.kind == "app":
            await self.supervisor.remove(step.name)
            shutil.rmtree(self.layout.build / step.name, ignore_errors=True)
        else:
            self.state.delete_task(step.name)
        await emit(_step_event(step, "deleted"))

    async def configure_tasks(
        self, prepared: Prepared, environ: Mapping[str, str], emit: Emit | None = None
    ) -> None:
        """Give the runner every task of the spec, with its environment; record them."""
        build, plan = prepared.build, prepared.plan
        spec = build.spec
        units = [
            task_unit(build, task, prepared.secrets, plan.desired_hash("task", name))
            for name, task in spec.tasks.items()
        ]
        # The project's name and the user's base variables are known from the spec applied.
        self.executor.context = dataclasses.replace(
            self.executor.context, project=spec.project, root=spec.root
        )
        self.executor.base_env = base_env(environ)
        needed = tuple(sorted({d for task in spec.tasks.values() for d in task.depends_on}))
        await self.runner.configure(units, self.endpoints(needed))
        for step in prepared.plan.steps:
            if step.kind == "task" and step.hash is not None:
                self.state.put_task(step.name, step.hash)
                if step.action != "unchanged" and emit is not None:
                    await emit(_step_event(step, "ready"))


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _step_event(step: Step, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": "step",
        "kind": step.kind,
        "name": step.name,
        "action": step.action,
        "status": status,
        **extra,
    }


def stopped_app_spec(name: str, reason: str, record_hash: str, root: Path) -> ProcessSpec:
    """A stand-in for an app that cannot be restarted: it exits at once, saying why."""
    message = f"engine: cannot restart {name}: {reason}; run `engine apply` to start it again"
    return ProcessSpec(
        name=name,
        argv=["/bin/sh", "-c", 'echo "$1" >&2; exit 1', "sh", message],
        env={},
        cwd=root,
        hash=record_hash,
    )
