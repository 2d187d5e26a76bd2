"""What the routes of one app share: its identity, environment and pooled HTTP client."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.types import ASGIApp

from engine.runtime import ConfigError

if TYPE_CHECKING:  # imported only by apps that call out, which saves ~7 MiB per app
    import httpx

    from engine.runtime.runclient import RunClient

__all__ = ["Shared", "shared"]


@dataclass
class Shared:
    """Per-app state, kept on `app.state.engine`; `http` is opened by the app's lifespan."""

    project: str
    name: str
    endpoints: dict[str, str] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    run_api: tuple[str, str] | None = None
    needs_http: bool = False
    metrics: bool = True
    key_headers: set[str] = field(default_factory=set)
    """The API key headers the app's routes check (lower case), which proxies drop."""

    @classmethod
    def from_env(cls, project: str, name: str) -> Shared:
        """Read `ENGINE_ENDPOINTS` (JSON: app name -> URL) from the environment."""
        raw = os.environ.get("ENGINE_ENDPOINTS", "{}")
        try:
            endpoints = json.loads(raw)
        except ValueError:
            raise ConfigError("ENGINE_ENDPOINTS is not a JSON object") from None
        if not isinstance(endpoints, dict):
            raise ConfigError("ENGINE_ENDPOINTS is not a JSON object")
        return cls(project, name, endpoints)

    def need_runs(self) -> None:
        """Read the run API's settings now (app start); raises ConfigError if absent."""
        if self.run_api is None:
            from engine.runtime.runclient import RunClient

            self.run_api = RunClient.settings_from_env()
        self.needs_http = True

    def client(self) -> httpx.AsyncClient:
        """The pooled HTTP client (exists while the app's lifespan runs)."""
        if self.http is None:
            raise RuntimeError("the app's lifespan has not started: no HTTP client")
        return self.http

    def runs(self) -> RunClient | None:
        """A run API client, or None if no route of this app declared that it starts runs."""
        if self.run_api is None:
            return None
        from engine.runtime.runclient import RunClient

        return RunClient(*self.run_api, self.client())


def shared(app: ASGIApp) -> Shared:
    """The Shared state of `app` (made by `create_app`)."""
    return app.state.engine  # type: ignore[attr-defined]
