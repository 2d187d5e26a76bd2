"""A small Language Server Protocol client over stdio, enough to drive yaml-language-server:
open a document, read its diagnostics, ask for a hover."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER = HERE / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
AJV = HERE / "node_modules" / "ajv"
INSTALL = f"npm install --prefix {HERE.relative_to(HERE.parents[1])}"


def missing_tools(*needed: Path) -> str | None:
    """Why the editor tests cannot run here (None when they can)."""
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt-get install nodejs npm)"
    absent = [p.name for p in needed if not p.exists()]
    if absent:
        return f"{', '.join(absent)} not installed: run `{INSTALL}`"
    return None


class LanguageServer:
    """yaml-language-server started with `--stdio`; `close()` stops it (by its pid)."""

    def __init__(self, settings: dict[str, Any], timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.process = subprocess.Popen(
            ["node", str(SERVER), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._incoming: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._diagnostics: dict[str, list[dict[str, Any]]] = {}
        threading.Thread(target=self._read, daemon=True).start()
        capabilities = {
            "workspace": {"configuration": True},
            "textDocument": {"hover": {"contentFormat": ["markdown"]}},
        }
        self.request(
            "initialize", {"processId": None, "rootUri": None, "capabilities": capabilities}
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": {"yaml": settings}})

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    # the protocol

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    return
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self._incoming.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self._next_id += 1
        wanted = self._next_id
        self._send({"id": wanted, "method": method, "params": params})
        return self._until(lambda m: m.get("id") == wanted and "method" not in m)["result"]

    def _until(self, predicate: Any) -> dict[str, Any]:
        while True:
            try:
                message = self._incoming.get(timeout=self.timeout)
            except queue.Empty:
                raise TimeoutError("yaml-language-server did not answer") from None
            if self._handled(message):
                continue
            if predicate(message):
                return message

    def _handled(self, message: dict[str, Any]) -> bool:
        """Answer the server's own requests; keep diagnostics; True if nothing is left."""
        method = message.get("method")
        if method == "workspace/configuration":
            items = message["params"]["items"]
            self._send({"id": message["id"], "result": [self.settings] * len(items)})
            return True
        if method is not None and "id" in message:  # e.g. client/registerCapability
            self._send({"id": message["id"], "result": None})
            return True
        if method == "textDocument/publishDiagnostics":
            params = message["params"]
            self._diagnostics[params["uri"]] = params["diagnostics"]
            return False
        return method is not None

    # what the tests ask

    def diagnostics(self, path: Path, text: str) -> list[dict[str, Any]]:
        """Open `path` with `text`; the diagnostics the server publishes for it."""
        uri = path.resolve().as_uri()
        self._diagnostics.pop(uri, None)
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": document})
        self._until(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
            )
        )
        return self._diagnostics[uri]

    def hover(self, path: Path, line: int, character: int) -> str:
        """The hover text at a 0-based position of an opened document ("" if none)."""
        position = {"line": line, "character": character}
        params = {"textDocument": {"uri": path.resolve().as_uri()}, "position": position}
        result = self.request("textDocument/hover", params)
        return result["contents"]["value"] if result else ""
