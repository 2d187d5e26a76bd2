"""The plan: what apply would create, update, replace or delete, and why.

A plan is plain data computed from the compiled spec, the secrets' hashes and the recorded
state; the executor carries it out without making decisions of its own.

* `create`: not running yet.
* `replace`: changed; the new version starts beside the old one, which stops once the new
  one is healthy (so it keeps serving meanwhile).
* `update`: changed, but it binds a fixed port itself (a `command:` app): restarted in
  place. A task's new version is an `update` too.
* `delete`: no longer in the spec.
* `unchanged`: nothing to do.

Each step's reasons say what changed (`handlers.py changed`, `env changed`, `secret
github-secret changed`), from the parts its hash is made of. With `stable_endpoints` (the
backend keeps an app's URL across replacements) a dependency's new version restarts none
of its dependents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from engine.compiler import Build
from engine.secrets import secret_hash
from engine.spec.model import App, Grant, Spec

Action = Literal["create", "update", "replace", "delete", "unchanged"]
SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "unchanged": " "}
RUNNING = ("starting", "running", "backoff")


@dataclass(frozen=True)
class Recorded:
    """What the state knows of one app or task: its hash, and for apps port and state."""

    hash: str
    port: int | None = None
    state: str = "running"
    parts: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Step:
    """One thing to do to one app or task."""

    action: Action
    kind: Literal["app", "task"]
    name: str
    hash: str | None
    reasons: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    level: int = 0
    parts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The ordered steps of one apply, and what they were computed from."""

    project: str
    spec_path: str
    spec_sha256: str
    state_token: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.action != "unchanged"]

    def desired_hash(self, kind: str, name: str) -> str:
        """The hash the plan wants `kind` `name` (app or task) to run at."""
        step = next(s for s in self.steps if (s.kind, s.name) == (kind, name))
        if step.hash is None:
            raise KeyError(f"{kind} {name!r} is being deleted")
        return step.hash

    def counts(self) -> dict[str, int]:
        """How many steps of each action."""
        counts = dict.fromkeys(SYMBOLS, 0)
        for step in self.steps:
            counts[step.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        steps = tuple(
            Step(
                **{
                    **s,
                    "reasons": tuple(s["reasons"]),
                    "depends_on": tuple(s["depends_on"]),
                    "parts": dict(s.get("parts", {})),
                }
            )
            for s in data["steps"]
        )
        return cls(
            data["project"], data["spec_path"], data["spec_sha256"], data["state_token"], steps
        )

    def render(self) -> str:
        """The plan as text, like `terraform plan`: a symbol, the kind and name, the reasons."""
        if not self.changes:
            return f"No changes. Project {self.project} matches {self.spec_path}.\n"
        lines = [f"engine will make these changes to project {self.project}:", ""]
        width = max(len(f"{s.kind} {s.name}") for s in self.steps)
        for step in self.changes:
            label = f"{step.kind} {step.name}".ljust(width)
            why = f"  ({'; '.join(step.reasons)})" if step.reasons else ""
            lines.append(f"  {SYMBOLS[step.action]:>3} {label}  {step.action}{why}")
        c = self.counts()
        lines += [
            "",
            f"Plan: {c['create']} to create, {c['update'] + c['replace']} to restart "
            f"({c['replace']} replaced side by side), {c['delete']} to delete, "
            f"{c['unchanged']} unchanged.",
        ]
        return "\n".join(lines) + "\n"


def _desired_hash(
    content_hash: str, grants: tuple[Grant, ...], secret_hashes: Mapping[str, str]
) -> str:
    """An app's or task's desired hash: its compiled artifact, grants and secrets' hashes."""
    digest = hashlib.sha256(content_hash.encode())
    for grant in sorted(grants, key=lambda g: g.secret):
        digest.update(f"\0{grant}\0{secret_hashes.get(grant.secret, '')}".encode())
    return digest.hexdigest()


def state_token(apps: Mapping[str, Recorded], tasks: Mapping[str, Recorded]) -> str:
    """A fingerprint of the recorded state, to refuse a saved plan the state has moved past."""
    data = {
        "apps": {n: [r.hash, r.port] for n, r in sorted(apps.items())},
        "tasks": {n: r.hash for n, r in sorted(tasks.items())},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def levels(spec: Spec) -> dict[str, int]:
    """Each app's start level: 0 for no dependencies, else one more than its deepest one."""
    result: dict[str, int] = {}
    remaining = dict(spec.apps)
    level = 0
    while remaining:
        ready = [n for n, a in remaining.items() if all(d in result for d in a.depends_on)]
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        for name in ready:
            result[name] = level
            del remaining[name]
        level += 1
    return result


def changes(
    old: Mapping[str, str] | None, new: Mapping[str, str], grants: tuple[Grant, ...]
) -> list[str]:
    """What differs between a recorded version's parts and the desired one's, in words.

    Secrets have no part of their own (a per-secret hash would let a weak value be guessed
    from the state): when nothing else differs, a granted secret changed.
    """
    if old is None:
        return ["changed"]
    reasons: list[str] = []
    differ = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    if differ & {"config", "env"}:
        differ.discard("module")  # the module follows from the config
    for key in sorted(differ):
        what, _, name = key.partition(" ")
        verb = "added" if key not in old else "removed" if key not in new else "changed"
        if what == "file":
            reasons.append(f"{name} {verb}")
        elif what == "credential":
            reasons.append(f"credential for {name} {verb}")
        else:
            reasons.append(f"{'generated module' if key == 'module' else key} changed")
    if reasons:
        return reasons
    names = sorted({g.secret for g in grants})
    if len(names) == 1:
        return [f"secret {names[0]} changed"]
    return [f"a secret changed (one of {', '.join(names)})"] if names else ["changed"]


def make_plan(
    build: Build,
    secrets: Mapping[str, str],
    apps: Mapping[str, Recorded],
    tasks: Mapping[str, Recorded],
    *,
    stable_endpoints: bool = False,
) -> Plan:
    """Diff the compiled spec against the recorded state into ordered steps."""
    spec = build.spec
    hashes = {name: secret_hash(name, value) for name, value in secrets.items()}
    order = levels(spec)
    steps: dict[str, Step] = {}
    for name in sorted(spec.apps, key=lambda n: (order[n], n)):
        app = spec.apps[name]
        artifact = build.apps[name]
        desired = _desired_hash(artifact.content_hash, app.hashed_grants(), hashes)
        parts = dict(artifact.parts)
        step = _app_step(app, desired, apps.get(name), steps, order, spec, stable_endpoints, parts)
        steps[name] = replace(step, parts=parts)
    result = list(steps.values())
    result += [
        Step("delete", "app", name, None, ("no longer in the spec",))
        for name in sorted(set(apps) - set(spec.apps))
    ]
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        parts = dict(build.tasks[name].parts)
        desired = _desired_hash(build.tasks[name].content_hash, task.hashed_grants(), hashes)
        recorded = tasks.get(name)
        deps = task.depends_on
        moved = [d for d in deps if _moves(spec, steps[d], stable_endpoints)]
        if recorded is None:
            action: Action = "create"
            reasons: list[str] = []
        elif recorded.hash != desired or moved:
            action = "update"
            reasons = (
                changes(recorded.parts, parts, task.hashed_grants())
                if recorded.hash != desired
                else []
            )
            reasons += [f"{d} gets a new endpoint" for d in moved]
        else:
            action, reasons = "unchanged", []
        result.append(Step(action, "task", name, desired, tuple(reasons), deps, 0, parts))
    result += [
        Step("delete", "task", name, None, ("no longer in the spec",))
        for name in sorted(set(tasks) - set(spec.tasks))
    ]
    return Plan(spec.project, str(spec.path), spec.sha256, state_token(apps, tasks), tuple(result))


def _moves(spec: Spec, step: Step, stable_endpoints: bool) -> bool:
    """Whether the app of `step` gets a new URL in this apply."""
    if step.action == "create":
        return True
    app = spec.apps[step.name]
    # A command app binds its own port: without a fixed one, its replacement moves.
    stable = stable_endpoints and not (app.command is not None and app.port is None)
    return step.action == "replace" and not stable


def _app_step(
    app: App,
    desired: str,
    recorded: Recorded | None,
    earlier: Mapping[str, Step],
    order: Mapping[str, int],
    spec: Spec,
    stable_endpoints: bool,
    parts: Mapping[str, str],
) -> Step:
    def step(action: Action, *reasons: str) -> Step:
        return Step(action, "app", app.name, desired, reasons, app.depends_on, order[app.name])

    if recorded is None:
        return step("create")
    reasons = []
    if recorded.hash != desired:
        reasons += changes(recorded.parts, parts, app.hashed_grants())
    if recorded.state not in RUNNING:
        reasons.append(f"not running ({recorded.state})")
    if app.port is not None and recorded.port != app.port:
        reasons.append(f"port {recorded.port} -> {app.port}")
    for dep in app.depends_on:
        if _moves(spec, earlier[dep], stable_endpoints):
            reasons.append(f"{dep} gets a new endpoint")
    if not reasons:
        return step("unchanged")
    in_place = app.command is not None and app.port is not None
    return step("update" if in_place else "replace", *reasons)
