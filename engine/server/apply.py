"""Carry out a plan on any backend: apps level by level, then deletes, then tasks.

The plan decides what changes; this executor only dispatches on each step's action. A
level's apps are handed to `Backend.deploy` together, once every app they depend on is
healthy; an app that fails keeps its previous version serving, and the apps that depend
on it are skipped. Every step is reported as a typed event (`engine.events`), which the
control plane streams to the CLI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import Backend, Deployed
from engine.compiler import Build, compile_spec
from engine.errors import EngineError, SpecError
from engine.events import (
    ApplyEvent,
    DoneEvent,
    ErrorEvent,
    PlanEvent,
    StepEvent,
    WarningsEvent,
)
from engine.layout import Layout
from engine.load import check_spec
from engine.plan import Plan, Recorded, Step, make_plan
from engine.runs.runner import Runner
from engine.secrets import resolve_secrets
from engine.server.console_auth import console_link
from engine.server.launch import ControlPlaneAddress
from engine.spec.model import Spec
from engine.state import AppRecord, State
from engine.units import Units, build_units

Emit = Callable[[ApplyEvent], Awaitable[None]]
PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class Prepared:
    """A spec made ready to apply: compiled, its secrets read, its plan and units computed."""

    build: Build
    secrets: dict[str, str]
    plan: Plan
    units: Units
    warnings: tuple[str, ...] = ()


def recorded(state: State) -> tuple[dict[str, Recorded], dict[str, Recorded]]:
    """The state's apps and tasks as the planner sees them, with their recorded parts."""
    apps = {
        r.name: Recorded(r.hash, r.port, r.state, state.parts("app", r.name, r.hash))
        for r in state.apps()
    }
    tasks = {
        name: Recorded(h, parts=state.parts("task", name, h)) for name, h in state.tasks().items()
    }
    return apps, tasks


def prepare(
    spec_path: Path,
    environ: Mapping[str, str],
    state: State,
    label: str | None = None,
    *,
    target: str = "local",
    stable_endpoints: bool = True,
) -> Prepared:
    """Validate, compile and plan `spec_path` against `state`; read its secrets.

    Diagnostics name the spec as `label` (the path the user typed), if given.
    """
    checked = check_spec(spec_path, environ, label=label, target=target)
    build = compile_spec(checked.spec)
    secrets = resolve_secrets(checked.spec, environ)
    apps, tasks = recorded(state)
    plan = make_plan(build, secrets, apps, tasks, stable_endpoints=stable_endpoints)
    units = build_units(build, secrets, plan)
    return Prepared(build, secrets, plan, units, tuple(str(w) for w in checked.warnings))


class Applier:
    """Applies specs for one project on one backend; one apply at a time."""

    def __init__(
        self,
        layout: Layout,
        state: State,
        backend: Backend,
        runner: Runner,
        api: ControlPlaneAddress,
        *,
        target: str = "local",
    ) -> None:
        self.layout = layout
        self.state = state
        self.backend = backend
        self.runner = runner
        self.api = api
        self.target = target
        self.lock = asyncio.Lock()
        self.spec: Spec | None = None
        """The spec whose tasks the runner runs now (what the console shows), once one is."""

    def prepare(
        self, spec_path: Path, environ: Mapping[str, str], label: str | None = None
    ) -> Prepared:
        """`prepare()` for this applier's target and backend."""
        stable = self.backend.stable_endpoints
        return prepare(
            spec_path, environ, self.state, label, target=self.target, stable_endpoints=stable
        )

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
                prepared = await asyncio.to_thread(self.prepare, spec_path, environ, label)
            except SpecError as exc:
                await emit(ErrorEvent(tuple(str(d) for d in exc.diagnostics)))
                return False
            except EngineError as exc:
                await emit(ErrorEvent((str(exc),)))
                return False
            plan = prepared.plan
            if prepared.warnings:
                await emit(WarningsEvent(prepared.warnings))
            # A saved plan is carried out only if it is still exactly what would be done:
            # the steps' hashes cover the spec, the handlers' sources and the secrets.
            if expect is not None and json.loads(json.dumps(plan.to_dict())) != expect:
                message = (
                    "the saved plan is stale: the spec, its source files, its secrets or "
                    "the running system changed since it was made; run `engine plan -o FILE` "
                    "again"
                )
                await emit(ErrorEvent((message,)))
                return False
            await emit(PlanEvent(plan.to_dict(), plan.render()))
            apply_id = self.state.begin_apply(plan.spec_sha256)
            try:
                ok = await self._execute(prepared, environ, emit, health_timeout)
            except EngineError as exc:  # the target refused or could not be reached
                await emit(ErrorEvent((str(exc),)))
                ok = False
            (self.layout.dir / PROJECT_FILE).write_text(
                json.dumps(
                    {"spec_path": str(spec_path), "project": plan.project, "target": self.target}
                )
            )
            summary = json.dumps(plan.counts())
            self.state.finish_apply(apply_id, "ok" if ok else "failed", summary)
            apps = tuple(sorted((await self.backend.observe()).values(), key=lambda d: d.name))
            await emit(DoneEvent(ok, apps, console_link(self.api.url, self.api.token)))
            return ok

    async def _execute(
        self, prepared: Prepared, environ: Mapping[str, str], emit: Emit, health_timeout: float
    ) -> bool:
        plan = prepared.plan
        deployed = await self.backend.observe()
        endpoints = {name: d.url for name, d in deployed.items() if d.url and d.ok}
        failed: set[str] = set()
        app_steps = [s for s in plan.steps if s.kind == "app" and s.action != "delete"]
        for level in sorted({s.level for s in app_steps}):
            batch = [s for s in app_steps if s.level == level and s.action != "unchanged"]
            ready = []
            for step in batch:
                blocked = [d for d in step.depends_on if d in failed]
                if blocked:
                    failed.add(step.name)
                    await emit(
                        _step_event(step, "skipped", error=f"dependency {blocked[0]} failed")
                    )
                else:
                    ready.append(step)
                    await emit(_step_event(step, "starting"))
            if not ready:
                continue
            units = [prepared.units.apps[s.name] for s in ready]
            results = await self.backend.deploy(units, endpoints, health_timeout)
            for step in ready:
                failed |= await self._report(step, results[step.name], endpoints, emit)
        deletes = [s for s in plan.steps if s.action == "delete"]
        for step in deletes:
            await emit(_step_event(step, "stopping"))
        removed = [s.name for s in deletes if s.kind == "app"]
        if removed:
            await self.backend.remove(removed)
        for step in deletes:
            if step.kind == "task":
                self.state.delete_task(step.name)
            else:
                self.state.delete_app(step.name)
            await emit(_step_event(step, "deleted"))
        await self.configure_tasks(prepared, environ, endpoints, emit)
        return not failed

    async def _report(
        self, step: Step, result: Deployed, endpoints: dict[str, str], emit: Emit
    ) -> set[str]:
        """Emit how one app's step ended; return {its name} if it failed."""
        if not result.ok:
            await emit(_step_event(step, "failed", error=result.detail))
            return {step.name}
        if result.url:
            endpoints[step.name] = result.url
        assert step.hash is not None
        self._record(result)
        self.state.put_parts("app", step.name, step.hash, step.parts)
        await emit(_step_event(step, "running", url=result.url))
        return set()

    def _record(self, result: Deployed) -> None:
        """Record an app a cluster runs now; the local supervisor records its own (with
        pids), so a record already at this hash is left alone."""
        known = self.state.get_app(result.name)
        if known is None or known.hash != result.hash:
            state, url = str(result.state), result.url
            self.state.put_app(AppRecord(result.name, result.hash, state, url=url))

    async def configure_tasks(
        self,
        prepared: Prepared,
        environ: Mapping[str, str],
        endpoints: Mapping[str, str],
        emit: Emit | None = None,
    ) -> None:
        """Give the runner every task of the spec (its executor makes their environment,
        given the apps' current `endpoints`); record them."""
        await self.runner.configure(list(prepared.units.tasks.values()), endpoints)
        self.spec = prepared.build.spec
        for step in prepared.plan.steps:
            if step.kind == "task" and step.hash is not None:
                self.state.put_task(step.name, step.hash)
                self.state.put_parts("task", step.name, step.hash, step.parts)
                if step.action != "unchanged" and emit is not None:
                    await emit(_step_event(step, "ready"))


def _step_event(
    step: Step, status: str, *, url: str | None = None, error: str | None = None
) -> StepEvent:
    return StepEvent(step.kind, step.name, step.action, status, url, error)
