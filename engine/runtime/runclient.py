"""An async client of the engine's run API (`ENGINE_API_URL`, `ENGINE_API_TOKEN`).

It borrows the app's pooled `httpx.AsyncClient` (opened and closed by the app's lifespan).
Errors: `RunAPIUnreachable` when no answer came, `RunAPIError` (with `status` and `body`)
when the API answered with an error status.

A client made by `keyed(key, ttl)` sends an idempotency key with each start (a webhook
delivery id): the run store holds `(task, key)` for `ttl` seconds, across every replica
and restart, and a start whose key names a run already raises `DuplicateRun`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from engine.errors import ControlPlaneError
from engine.runtime import ConfigError
from engine.runtime.access import HEADER, request_id

if TYPE_CHECKING:  # a RunClient exists only beside the app's httpx client, imported there
    import httpx

__all__ = ["FINAL_STATES", "DuplicateRun", "RunAPIError", "RunAPIUnreachable", "RunClient"]

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
_SLACK = 10.0  # seconds allowed on top of a server-side wait before the client gives up


class RunAPIUnreachable(ControlPlaneError):
    """Raised when the run API cannot be reached or does not answer in time."""


class RunAPIError(ControlPlaneError):
    """Raised when the run API answers with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"run API answered {status}")


class DuplicateRun(Exception):
    """A keyed start whose key names a run already: `run` is that run, as JSON."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        super().__init__(f"run {run.get('id')} holds this key")


class RunClient:
    """Start, read and follow runs through the run API."""

    def __init__(
        self,
        base_url: str,
        token: str,
        http: httpx.AsyncClient,
        *,
        key: str | None = None,
        key_ttl: float | None = None,
    ) -> None:
        self.api_url = base_url
        self.base_url = base_url.rstrip("/") + "/api/v1/runs"
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = http
        self.key = key
        self.key_ttl = key_ttl

    def keyed(self, key: str, ttl: float | None) -> RunClient:
        """A client like this one whose starts carry the idempotency key `key`, held `ttl` s."""
        return RunClient(self.api_url, self.token, self.http, key=key, key_ttl=ttl)

    @staticmethod
    def settings_from_env() -> tuple[str, str]:
        """(url, token) of the run API; raises ConfigError if `ENGINE_API_URL` is unset."""
        url = os.environ.get("ENGINE_API_URL")
        if not url:
            raise ConfigError("ENGINE_API_URL is not set: this app cannot start runs")
        return url, os.environ.get("ENGINE_API_TOKEN", "")

    async def start(self, task: str, inputs: Any) -> dict[str, Any]:
        """Create a run of `task`; the run as JSON (raises RunAPIError on 404/422/...).

        With a key, the API answers 201 for a new run and 200 with the run that holds the
        key already, raised as DuplicateRun."""
        body: dict[str, Any] = {"task": task, "inputs": inputs}
        if self.key is not None:
            body.update(key=self.key, key_ttl=self.key_ttl)
        response = await self._send("POST", "", json=body)
        if self.key is not None and response.status_code == 200:
            raise DuplicateRun(response.json())
        return response.json()

    async def get(self, run_id: str) -> dict[str, Any]:
        """The run `run_id` as JSON."""
        return await self._call("GET", f"/{run_id}")

    async def wait(self, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once finished or after `timeout` seconds, whichever comes first."""
        return await self._call(
            "GET", f"/{run_id}/wait", params={"timeout": timeout}, timeout=timeout + _SLACK
        )

    async def events(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """Each state of the run as it changes (server-sent events), until a final one."""
        import httpx

        url = f"{self.base_url}/{run_id}/events"
        try:
            async with self.http.stream(
                "GET", url, headers=self.headers, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise RunAPIError(response.status_code, _json_or_text(response))
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:].strip())
        except httpx.HTTPError as exc:
            raise RunAPIUnreachable(f"run API unreachable: {type(exc).__name__}") from exc

    async def _call(
        self, method: str, path: str, *, timeout: float = 10.0, **kwargs: Any
    ) -> dict[str, Any]:
        return (await self._send(method, path, timeout=timeout, **kwargs)).json()

    async def _send(
        self, method: str, path: str, *, timeout: float = 10.0, **kwargs: Any
    ) -> httpx.Response:
        import httpx

        try:
            response = await self.http.request(
                method,
                self.base_url + path,
                headers=_with_id(self.headers),
                timeout=timeout,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise RunAPIUnreachable(f"run API unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise RunAPIError(response.status_code, _json_or_text(response))
        return response


def _with_id(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the request id of the request being answered, if any."""
    rid = request_id.get()
    return {**headers, HEADER: rid} if rid is not None else headers


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text}
