"""What an apply reports as it goes, and what `status` answers: typed, and as JSON.

The control plane streams apply events to the CLI as JSON lines (`to_json`); the CLI and
programs read them back with `event_from_json`. Each event is a frozen dataclass:

    ErrorEvent     the spec or the saved plan was refused; nothing was started
    WarningsEvent  the spec is valid, with warnings
    PlanEvent      the plan about to be carried out
    StepEvent      one app or task changed state (starting, running, failed, skipped, ...)
    DoneEvent      the apply ended: whether every app is healthy, and what runs now
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.backends.base import Deployed, DeployedState


@dataclass(frozen=True)
class ErrorEvent:
    """The apply was refused; `errors` are one line each (positioned for spec errors)."""

    errors: tuple[str, ...]


@dataclass(frozen=True)
class WarningsEvent:
    """The spec is valid, with these warnings."""

    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PlanEvent:
    """The plan about to be carried out: as data (`Plan.to_dict()`) and as text."""

    plan: dict[str, Any]
    text: str


@dataclass(frozen=True)
class StepEvent:
    """One app or task of the plan moved on: its action and where it is now."""

    kind: str
    name: str
    action: str
    status: str
    url: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class DoneEvent:
    """The apply ended; `ok` if every app is healthy; `apps` as they run now; `console`, a
    one-time link that signs a browser in to the console."""

    ok: bool
    apps: tuple[Deployed, ...] = ()
    console: str = ""


ApplyEvent = ErrorEvent | WarningsEvent | PlanEvent | StepEvent | DoneEvent

_KINDS: dict[str, type[Any]] = {
    "error": ErrorEvent,
    "warnings": WarningsEvent,
    "plan": PlanEvent,
    "step": StepEvent,
    "done": DoneEvent,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def to_json(event: ApplyEvent) -> dict[str, Any]:
    """The event as a JSON object with its kind in `event`."""
    if isinstance(event, DoneEvent):
        apps = [a.to_dict() for a in event.apps]
        return {"event": "done", "ok": event.ok, "apps": apps, "console": event.console}
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(event).items()}
    return {"event": _NAMES[type(event)], **data}


def event_from_json(data: dict[str, Any]) -> ApplyEvent:
    """The event a JSON object describes (as written by `to_json`)."""
    kind = data["event"]
    fields = {k: v for k, v in data.items() if k != "event"}
    if kind == "done":
        apps = tuple(deployed_from_json(a) for a in fields.get("apps", []))
        return DoneEvent(bool(fields["ok"]), apps, fields.get("console", ""))
    if kind == "error":
        return ErrorEvent(tuple(fields["errors"]))
    if kind == "warnings":
        return WarningsEvent(tuple(fields["warnings"]))
    event: ApplyEvent = _KINDS[kind](**fields)
    return event


def deployed_from_json(data: dict[str, Any]) -> Deployed:
    """An app as `Deployed.to_dict()` wrote it."""
    return Deployed(
        name=data["name"],
        hash=data.get("hash", ""),
        state=DeployedState(data["state"]),
        url=data.get("url"),
        detail=data.get("detail", ""),
        pid=data.get("pid"),
        port=data.get("port"),
        restarts=data.get("restarts", 0),
    )


@dataclass(frozen=True)
class ControlPlaneStatus:
    """Where the project's control plane answers, and its process."""

    url: str
    pid: int


@dataclass(frozen=True)
class Status:
    """What `engine status --json` prints: the project, its control plane and its apps."""

    project: str
    target: str = "local"
    control_plane: ControlPlaneStatus | None = None
    apps: tuple[Deployed, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """As JSON (the documented shape of `engine status --json`)."""
        plane = asdict(self.control_plane) if self.control_plane else None
        apps = [a.to_dict() for a in self.apps]
        return {
            "project": self.project,
            "target": self.target,
            "control_plane": plane,
            "apps": apps,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        """The status the control plane answered."""
        plane = data.get("control_plane")
        return cls(
            project=data["project"],
            target=data.get("target", "local"),
            control_plane=ControlPlaneStatus(plane["url"], plane["pid"]) if plane else None,
            apps=tuple(deployed_from_json(a) for a in data.get("apps", [])),
        )
