"""What an app answers, in words, for its console page: routes, webhooks, WebSockets, static.

Read from the applied spec (`engine.spec.model.App`): method, path, what it does, and who
may call it. Nothing here shows a secret: auth is named by its kind, never by its value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.spec.model import (
    Action,
    App,
    Auth,
    HandlerAction,
    ProxyAction,
    RespondAction,
    RunAction,
)

__all__ = ["Endpoint", "endpoints"]


@dataclass(frozen=True)
class Endpoint:
    """One thing an app answers. `task` and `app` name what `does` refers to, for links."""

    method: str
    path: str
    does: str
    access: str
    task: str | None = None
    app: str | None = None


def endpoints(app: App) -> list[Endpoint]:
    """Every endpoint of `app`, in the order of its spec: routes, webhooks, WebSockets."""
    found = [Endpoint("GET", app.health, "health check", "open")]
    for route in app.routes:
        found.append(
            _acting(route.method, route.path, route.action, _access(app, route.auth, route.open))
        )
    for hook in app.webhooks:
        access = f"{hook.provider} signature" if hook.secrets else "unsigned"
        actions = hook.events.items() if hook.events else [("", hook.action)]
        for event, action in actions:
            if action is None:
                continue
            described = _acting("POST", hook.path, action, access)
            what = f"{hook.provider} webhook" + (f" “{event}”" if event else "")
            found.append(replace(described, does=f"{what}: {described.does}"))
    for socket in app.websockets:
        if socket.pattern:
            does = f"{socket.pattern} WebSocket"
        elif socket.source:
            does = f"streams {socket.source.ref}() every {socket.interval:g} s"
        else:
            does = f"calls {socket.handler.ref}" if socket.handler else "WebSocket"
        found.append(Endpoint("WS", socket.path, does, _access(app, socket.auth, socket.open)))
    if app.static:
        found.append(Endpoint("GET", app.static.path, f"files of {app.static.dir}", "open"))
    return found


def _acting(method: str, path: str, action: Action, access: str) -> Endpoint:
    if isinstance(action, HandlerAction):
        return Endpoint(method, path, f"calls {action.ref}", access)
    if isinstance(action, RespondAction):
        return Endpoint(method, path, f"answers {action.status}", access)
    if isinstance(action, RunAction):
        waits = " and waits for it" if action.wait else ""
        does = f"starts a run of {action.task}{waits}"
        return Endpoint(method, path, does, access, task=action.task)
    assert isinstance(action, ProxyAction)
    target = action.app + (f" {action.path}" if action.path else "")
    return Endpoint(method, path, f"forwards to {target}", access, app=action.app)


def _access(app: App, auth: Auth | None, open_: bool) -> str:
    """Who may call an endpoint: its own auth, else the app's; `open` overrides both."""
    chosen = None if open_ else (auth or app.auth)
    if chosen is None:
        return "open"
    return "bearer token" if chosen.kind == "bearer" else f"API key ({chosen.header})"
