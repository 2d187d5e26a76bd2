"""Prefixing the names a blueprint's fragment creates, and the references to them.

Done on the parsed fragment, never on its text: a name is renamed only where the spec
language uses a name of that kind (depends_on, proxy.app, run.task and run.allow, secret
grants, auth, webhook secrets), and only if the fragment itself creates it. A reference
to a name the fragment does not create (a task of the user's own, passed in `with:`) is
left alone. Names inside `${{ }}` expressions and in handler code are not touched.
"""

from __future__ import annotations

import copy
from typing import Any

KINDS = ("secrets", "tasks", "apps")


class _Renamer:
    def __init__(self, data: dict[str, Any], prefix: str) -> None:
        self.names = {
            kind: {name: prefix + name for name in data.get(kind) or {}} for kind in KINDS
        }

    def name(self, kind: str, value: Any) -> Any:
        return self.names[kind].get(value, value) if isinstance(value, str) else value

    def names_list(self, kind: str, values: Any) -> Any:
        if not isinstance(values, list):
            return values
        return [self.name(kind, v) for v in values]

    def grants(self, grants: Any) -> Any:
        if not isinstance(grants, list):
            return grants
        return [self.grant(g) for g in grants]

    def grant(self, grant: Any) -> Any:
        if isinstance(grant, dict) and "name" in grant:
            return {**grant, "name": self.name("secrets", grant["name"])}
        return self.name("secrets", grant)

    def auth(self, owner: dict[str, Any]) -> None:
        auth = owner.get("auth")
        if not isinstance(auth, dict):
            return
        if "bearer" in auth:
            auth["bearer"] = self.name("secrets", auth["bearer"])
        api_key = auth.get("api_key")
        if isinstance(api_key, dict) and "secret" in api_key:
            api_key["secret"] = self.name("secrets", api_key["secret"])
        if "apps" in auth:
            auth["apps"] = self.names_list("apps", auth["apps"])

    def dependency(self, dependency: Any) -> Any:
        if isinstance(dependency, dict) and "app" in dependency:
            return {**dependency, "app": self.name("apps", dependency["app"])}
        return self.name("apps", dependency)

    def run(self, action: Any) -> None:
        run = action.get("run") if isinstance(action, dict) else None
        if not isinstance(run, dict):
            return
        if "task" in run:
            run["task"] = self.name("tasks", run["task"])
        if "allow" in run:
            run["allow"] = self.names_list("tasks", run["allow"])

    def common(self, item: dict[str, Any]) -> None:
        """Keys apps and tasks share."""
        if isinstance(item.get("depends_on"), list):
            item["depends_on"] = [self.dependency(d) for d in item["depends_on"]]
        if "secrets" in item:
            item["secrets"] = self.grants(item["secrets"])

    def app(self, app: dict[str, Any]) -> None:
        self.common(app)
        self.auth(app)
        for route in _dicts(app.get("routes")):
            self.auth(route)
            self.run(route)
            proxy = route.get("proxy")
            if isinstance(proxy, dict) and "app" in proxy:
                proxy["app"] = self.name("apps", proxy["app"])
        for hook in _dicts(app.get("webhooks")):
            self.webhook(hook)
        for socket in _dicts(app.get("websockets")):
            self.auth(socket)
            if "allow" in socket:
                socket["allow"] = self.names_list("tasks", socket["allow"])

    def webhook(self, hook: dict[str, Any]) -> None:
        self.auth(hook)
        if "secret" in hook:
            hook["secret"] = self.name("secrets", hook["secret"])
        if "secrets" in hook:
            hook["secrets"] = self.names_list("secrets", hook["secrets"])
        events = hook.get("events")
        for action in events.values() if isinstance(events, dict) else ():
            self.run(action)
        self.run(hook.get("action"))


def _dicts(values: Any) -> list[dict[str, Any]]:
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def prefix_fragment(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of `data` with `prefix` before every name it creates and each reference to one."""
    data = copy.deepcopy(data)
    renamer = _Renamer(data, prefix)
    for app in (data.get("apps") or {}).values():
        if isinstance(app, dict):
            renamer.app(app)
    for task in (data.get("tasks") or {}).values():
        if isinstance(task, dict):
            renamer.common(task)
    for kind in KINDS:
        if isinstance(data.get(kind), dict):
            data[kind] = {renamer.name(kind, k): v for k, v in data[kind].items()}
    return data
