"""Run a project's control plane: `python -m engine.server STATE_DIR [SPEC]`.

STATE_DIR is the target's folder (`.engine/`, or `.engine/targets/NAME/`); SPEC opens a
cluster target's backend before its first apply. Started (detached) by the CLI. It keeps
the previous token, and the previous port when it is free (or `ENGINE_CONTROL_PLANE_PORT`),
so that apps started by an earlier control plane can still reach the run API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from pathlib import Path

import uvicorn

from engine.backends import local
from engine.layout import Layout, keep_files_private, private_dir, tighten
from engine.runtime.access import LOG_CONFIG
from engine.server.app import create_control_plane
from engine.server.launch import ControlPlaneAddress
from engine.state import ControlPlaneInfo


def _bind(preferred: int | None, *, required: bool = False) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each answer waits ~40 ms for Nagle's algorithm and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for port in (preferred, 0) if preferred and not required else (preferred or 0,):
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            continue
    raise SystemExit(
        f"engine: cannot bind 127.0.0.1:{preferred or 0} for the control plane"
        + (f"; free it or change {PORT_VARIABLE}" if required else "")
    )


PORT_VARIABLE = "ENGINE_CONTROL_PLANE_PORT"
"""Pins the control plane's port (the console's and the run API's); default: the previous
control plane's port when it is free, else any free one."""


def _pinned() -> int | None:
    text = os.environ.get(PORT_VARIABLE, "")
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SystemExit(f"engine: {PORT_VARIABLE}={text!r} is not a port number (1-65535)")
    return int(text)


async def _serve(layout: Layout, spec_path: Path | None) -> None:
    previous = ControlPlaneInfo.read(layout.dir)
    token = previous.token if previous else secrets.token_urlsafe(32)
    pinned = _pinned()
    preferred = pinned or (int(previous.url.rsplit(":", 1)[1]) if previous else None)
    sock = _bind(preferred, required=pinned is not None)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_control_plane(layout, ControlPlaneAddress(url, token), spec_path)
    # A followed log (`engine logs -f`, `engine dev`) never ends by itself: give open
    # streams a second to finish on shutdown, then close them, so destroy does not hang.
    config = uvicorn.Config(
        app, log_config=LOG_CONFIG, access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    pid = os.getpid()
    ControlPlaneInfo(url, pid, local.start_time(pid) or 0, token).write(layout.dir)

    async def exit_on_destroy() -> None:
        await app.state.plane.shutdown.wait()
        await asyncio.sleep(0.2)  # let the destroy answer reach the CLI
        server.should_exit = True

    watcher = asyncio.create_task(exit_on_destroy())
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        current = ControlPlaneInfo.read(layout.dir)
        if current is not None and current.pid == pid:
            ControlPlaneInfo.remove(layout.dir)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m engine.server STATE_DIR [SPEC]")
    keep_files_private()  # everything it creates under .engine/, and what its children do
    layout = Layout.of(Path(argv[1]))
    private_dir(layout.dir)
    tighten(layout.dir)
    spec_path = Path(argv[2]) if len(argv) == 3 else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(layout, spec_path))


if __name__ == "__main__":
    main(sys.argv)
