"""Serve a generated app on the socket the engine holds for it, and on a private health port.

    python -m engine.backends.local.serve --fd N --health-port P [--workers R] DIR module:app

The supervisor binds each app's listening socket once and hands the same socket to every
version of the app, so the app's address never changes and a replacement refuses no
connection: old and new versions accept from one queue until the old one stops. The
private port belongs to this version alone; the supervisor checks the new version's health
there before it stops the old one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from engine.runtime.access import log_config
from engine.runtime.serving import UVICORN_OPTIONS

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # engine.runtime.metrics's, without importing it


def _private(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m engine.backends.local.serve`."""
    parser = argparse.ArgumentParser(prog="python -m engine.backends.local.serve")
    parser.add_argument("--fd", type=int, required=True, help="The app's shared socket.")
    parser.add_argument("--health-port", type=int, required=True, help="This version's own port.")
    parser.add_argument("--workers", type=int, default=1, help="Processes serving the app.")
    parser.add_argument("--health-path", default="/health", help="Left out of the access log.")
    parser.add_argument("app_dir", help="The folder holding the generated module.")
    parser.add_argument("app", help="module:attribute of the ASGI app.")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.app_dir)
    sockets = [socket.socket(fileno=args.fd), _private(args.health_port)]
    # Deadlines on slow headers and bodies, and 503 past a bound of connections.
    # engine.runtime.access writes the access lines (with request ids), each worker
    # configuring its logging from this dict; uvicorn's own access lines are off.
    config = uvicorn.Config(
        args.app,
        workers=args.workers,
        log_config=log_config(skip_path=args.health_path),
        access_log=False,
        **UVICORN_OPTIONS,
    )
    if args.workers > 1:
        with multiprocess_dir(Path(args.app_dir)):
            Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


@contextlib.contextmanager
def multiprocess_dir(app_dir: Path) -> Iterator[None]:
    """A fresh folder of this process's own for the workers' metrics (prometheus_client's
    multiprocess mode), set in the environment the workers inherit, removed at exit."""
    folder = app_dir / f"metrics-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    os.environ[MULTIPROC_VARIABLE] = str(folder)
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
