"""A tiny app for supervisor tests: GET /health and GET / answer its version and pid.

python tiny.py --port N [--version V] [--unhealthy] [--boot-delay S] [--exit-after S]
               [--boot-gate FILE]

--boot-gate: listen only once FILE exists, so a test decides when the app gets healthy.
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--version", default="1")
parser.add_argument("--unhealthy", action="store_true")
parser.add_argument("--boot-delay", type=float, default=0.0)
parser.add_argument("--exit-after", type=float, default=None)
parser.add_argument("--boot-gate", default=None)
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if args.unhealthy and self.path == "/health" else 200
        body = json.dumps({"version": args.version, "pid": os.getpid()}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *a: object) -> None:
        print(f"{self.command} {self.path} {a[1] if len(a) > 1 else ''}", flush=True)


print(f"tiny {args.version} booting on port {args.port} (pid {os.getpid()})", flush=True)
time.sleep(args.boot_delay)
while args.boot_gate and not os.path.exists(args.boot_gate):
    time.sleep(0.02)
if args.unhealthy:
    print("not ready: the database is missing", flush=True)
if args.exit_after is not None:
    threading.Timer(args.exit_after, lambda: os._exit(3)).start()
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
