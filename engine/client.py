"""The CLI's side of the control plane: find the project, start its control plane, call it."""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.backends import local
from engine.errors import ControlPlaneError, UsageError
from engine.layout import MARKER_VARIABLE, PROJECT_FILE, Layout
from engine.state import ControlPlaneInfo

START_TIMEOUT = 30.0


def find_project(directory: Path | None = None, target: str = "local") -> Layout:
    """The project whose `.engine/` is in `directory` or its parents (like git finds `.git`)."""
    start = (directory or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".engine").is_dir():
            return Layout(folder, target)
    raise UsageError(
        f"no engine project in {start} or its parents (no .engine/ folder); "
        "run `engine apply SPEC` first, or point at the project with -C DIR"
    )


def is_active(layout: Layout) -> bool:
    """Whether the project is applied (and not destroyed since), or its control plane runs."""
    applied = (layout.dir / PROJECT_FILE).exists()
    return applied or running_control_plane(layout) is not None


def connect(layout: Layout) -> ControlPlaneInfo:
    """The control plane of an applied project (started again if it died), else UsageError.

    A project that was never applied, or was destroyed, gets no new control plane.
    """
    if not is_active(layout):
        raise UsageError(
            f"nothing runs in {layout.root}: it was never applied, or it was destroyed; "
            "start it with `engine apply SPEC`"
        )
    return ensure_control_plane(layout)


def running_control_plane(layout: Layout) -> ControlPlaneInfo | None:
    """The project's control plane if its process is alive and ours, else None."""
    info = ControlPlaneInfo.read(layout.dir)
    if info is None or not local.is_alive(info.pid, info.start_time):
        return None
    return info


def live_control_plane(layout: Layout) -> ControlPlaneInfo | None:
    """The project's control plane if it runs, is ours and answers its health check."""
    info = running_control_plane(layout)
    return info if info is not None and _healthy(info) else None


def ensure_control_plane(layout: Layout, spec: Path | None = None) -> ControlPlaneInfo:
    """The running control plane, starting one (which re-adopts the apps) if there is none.

    A target other than `local` needs its spec to open its backend: `spec`, or the one
    last applied.
    """
    info = live_control_plane(layout)
    if info is not None:
        return info
    log_path = layout.control_plane_log
    argv = [sys.executable, "-m", "engine.server", str(layout.dir)]
    if spec is not None:
        argv.append(str(spec.resolve()))
    env = control_plane_environment(layout, spec)
    process = local.start_detached(argv, env, layout.root, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.exited():
            raise ControlPlaneError(
                f"the control plane exited at start (code {process.exit_code}); "
                f"see {log_path}:\n{_tail(log_path)}"
            )
        info = ControlPlaneInfo.read(layout.dir)
        if info is not None and info.pid == process.pid and _healthy(info):
            return info
        time.sleep(0.02)  # half of it, on average, is added to every cold start
    raise ControlPlaneError(
        f"the control plane did not answer within {START_TIMEOUT:g} s; see {log_path}"
    )


def _healthy(info: ControlPlaneInfo) -> bool:
    try:
        with _open(info.url, "GET", "/api/v1/health", timeout=2.0) as response:
            return response.status == 200
    except OSError:
        return False


def _open(
    url: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float | None = 30.0,
) -> http.client.HTTPResponse:
    address = urllib.parse.urlsplit(url)
    host = address.hostname or "127.0.0.1"
    connection = http.client.HTTPConnection(host, address.port, timeout=timeout)
    # The standard library suffices for loopback and starts in milliseconds; httpx cost a
    # third of a second of imports and TLS set-up on every command.
    connection.request(method, path, body=body, headers=headers or {})
    return connection.getresponse()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Client:
    """Calls to one control plane, with its token; errors become ControlPlaneError."""

    def __init__(self, info: ControlPlaneInfo) -> None:
        self.info = info
        self.headers = {"Authorization": f"Bearer {info.token}"}

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict | None = None,
        timeout: float | None = 30.0,
    ) -> http.client.HTTPResponse:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        headers = dict(self.headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        try:
            return _open(self.info.url, method, path, body=body, headers=headers, timeout=timeout)
        except OSError as exc:
            raise ControlPlaneError(
                f"cannot reach the control plane at {self.info.url}: {exc}"
            ) from exc

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict | None = None
    ) -> Any:
        """Call the API and return its JSON answer."""
        return _json(self._read(method, path, json_body=json, params=params))

    def text(self, path: str) -> str:
        """GET a text answer (e.g. a run's logs)."""
        return self._read("GET", path).decode("utf-8", errors="replace")

    def _read(self, method: str, path: str, **kwargs: Any) -> bytes:
        with self._send(method, path, timeout=None, **kwargs) as response:
            body = response.read()
            if response.status >= 400:
                raise ControlPlaneError(_detail(response.status, body))
            return body

    def lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """GET a text answer and yield its lines as they arrive (e.g. a followed log)."""
        with self._send("GET", path, params=params, timeout=None) as response:
            if response.status >= 400:
                raise ControlPlaneError(_detail(response.status, response.read()))
            for line in response:
                yield line.decode("utf-8", errors="replace")

    def stream(self, path: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `payload` and yield each JSON line of the answer as it arrives."""
        with self._send("POST", path, json_body=payload, timeout=None) as response:
            if response.status >= 400:
                raise ControlPlaneError(_detail(response.status, response.read()))
            try:
                for line in response:
                    if line.strip():
                        yield json.loads(line)
            except (OSError, http.client.HTTPException) as exc:
                raise ControlPlaneError(
                    f"lost the control plane at {self.info.url}: {exc}"
                ) from exc

    def wait_exit(self, timeout: float = 30.0) -> None:
        """Wait until the control plane's process has exited."""
        deadline = time.monotonic() + timeout
        while local.is_alive(self.info.pid, self.info.start_time) and time.monotonic() < deadline:
            time.sleep(0.05)


def _json(body: bytes) -> Any:
    return json.loads(body) if body else None


def _detail(status: int, body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        detail = json.loads(text).get("detail", text)
    except (ValueError, AttributeError):
        detail = text
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return f"{detail} (HTTP {status})"


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def referenced_variables(spec_path: Path) -> set[str]:
    """The environment variables a spec can read: each `${VAR}` in its text, and each
    secret's `env:` source (read without loading the whole spec)."""
    try:
        text = spec_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    names = set(_REFERENCE.findall(text))
    names.update(re.findall(r"\benv:\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)", text))
    return names


def environment(spec_path: Path | None) -> dict[str, str]:
    """What of the user's environment the control plane gets: the minimal base, the
    variables the spec references, and engine's own `ENGINE_*` settings; never the rest."""
    from engine.backends.local.environment import BASE_VARIABLES

    wanted = set(BASE_VARIABLES) | (referenced_variables(spec_path) if spec_path else set())
    return {k: v for k, v in os.environ.items() if k in wanted or k.startswith("ENGINE_")}


def control_plane_environment(layout: Layout, spec: Path | None = None) -> dict[str, str]:
    """The environment a new control plane starts with: `environment()` for `spec`, else the
    applied spec (it reloads that spec after a restart), plus what Python needs to find
    engine."""
    spec_path = spec
    try:
        spec_path = spec_path or Path(
            json.loads((layout.dir / PROJECT_FILE).read_text())["spec_path"]
        )
    except (OSError, ValueError, KeyError):
        spec_path = None
    env = environment(spec_path)
    env.update({k: os.environ[k] for k in ("PYTHONPATH", "VIRTUAL_ENV") if k in os.environ})
    env[MARKER_VARIABLE] = layout.marker
    return env
