"""The Ray dashboard's HTTP APIs, as the backend uses them: Serve, Jobs, packages, logs.

Only httpx: the control plane never imports Ray. Every failure to reach the dashboard or
an unexpected answer becomes a `RayError` naming the call and the dashboard's own words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine.errors import EngineError

TERMINAL_JOB_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayError(EngineError):
    """Raised when the Ray dashboard cannot be reached or answers an error."""


class Dashboard:
    """An async client of one cluster's dashboard (`Authorization: Bearer` if a token)."""

    def __init__(self, address: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._address = address.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self._address, headers=headers, timeout=timeout)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise RayError(f"cannot reach the Ray dashboard at {self._address}: {exc}") from exc
        if response.status_code in (401, 403):
            raise RayError(
                f"the Ray dashboard at {self._address} refused the token "
                f"({response.status_code}): check the target's `token` secret"
            )
        if response.status_code not in ok:
            text = response.text.strip()[-2000:]
            raise RayError(f"{method} {path} answered {response.status_code}: {text}")
        return response

    # Serve

    async def serve_details(self) -> dict[str, Any]:
        """`GET /api/serve/applications/`: every application, its status and config."""
        response = await self._call("GET", "/api/serve/applications/")
        return dict(response.json())

    async def put_serve_config(self, config: dict[str, Any]) -> None:
        """`PUT /api/serve/applications/`: declare the whole set of applications."""
        await self._call("PUT", "/api/serve/applications/", json=config)

    # Packages (working_dir archives in the cluster's GCS)

    async def ensure_package(self, uri: str, data: bytes) -> None:
        """Upload a gcs:// package unless the cluster has it (asking pins it for a while)."""
        path = "/api/packages/gcs/" + uri.removeprefix("gcs://")
        if (await self._call("GET", path, ok=(200, 404))).status_code == 404:
            await self._call("PUT", path, content=data)

    # Jobs

    async def submit_job(self, body: dict[str, Any]) -> bool:
        """`POST /api/jobs/`; False if a job with this submission id already exists."""
        response = await self._call("POST", "/api/jobs/", ok=(200, 400, 500), json=body)
        if response.is_success:
            return True
        if "already exists" in response.text:
            return False
        raise RayError(f"POST /api/jobs/ answered {response.status_code}: {response.text}")

    async def job(self, submission_id: str) -> dict[str, Any] | None:
        """The job's details (`status`, `message`, ...), or None if there is none."""
        response = await self._call("GET", f"/api/jobs/{submission_id}", ok=(200, 404))
        return None if response.status_code == 404 else dict(response.json())

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows."""
        return list((await self._call("GET", "/api/jobs/")).json())

    async def stop_job(self, submission_id: str) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after Ray's grace period)."""
        await self._job_call("POST", f"/api/jobs/{submission_id}/stop")

    async def delete_job(self, submission_id: str) -> None:
        """Forget a finished job (its record and logs)."""
        await self._job_call("DELETE", f"/api/jobs/{submission_id}", ok=(200, 400))

    async def _job_call(
        self, method: str, path: str, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response | None:
        """A call about one job; None if the job does not exist. Ray answers that with 404,
        or, when the job went between the head's lookup and its agent's (another control
        plane's purge, or this one's own wait, deleting it), with a 500 saying so."""
        response = await self._call(method, path, ok=(*ok, 404, 500))
        if response.status_code != 500:
            return None if response.status_code == 404 else response
        if "does not exist" in response.text:
            return None
        raise RayError(f"{method} {path} answered 500: {response.text.strip()[-2000:]}")

    async def job_logs(self, submission_id: str) -> str:
        """The job's whole log (stdout and stderr of its entrypoint); empty once it is gone."""
        response = await self._job_call("GET", f"/api/jobs/{submission_id}/logs")
        return "" if response is None else str(response.json().get("logs", ""))

    # Logs of actors (Serve replicas)

    async def actor_log(self, actor_id: str, suffix: str, lines: int) -> str:
        """The last `lines` of an actor's stdout (`out`) or stderr (`err`)."""
        params = {"actor_id": actor_id, "suffix": suffix, "lines": str(lines)}
        response = await self._call("GET", "/api/v0/logs/file", ok=(200, 404, 500), params=params)
        return response.text if response.is_success else ""

    async def follow_actor_log(self, actor_id: str, suffix: str) -> AsyncIterator[str]:
        """An actor's new log lines as they come."""
        params = {"actor_id": actor_id, "suffix": suffix, "lines": "0", "interval": "0.5"}
        try:
            async with self._http.stream(
                "GET", "/api/v0/logs/stream", params=params, timeout=None
            ) as response:
                async for line in response.aiter_lines():
                    yield line
        except httpx.HTTPError as exc:
            raise RayError(f"the log stream from {self._address} broke: {exc}") from exc
