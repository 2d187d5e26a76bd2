"""Spec text cannot inject code: hostile strings in every field that reaches a generated
module come out as the same strings, and nothing they spell is executed.

Each payload gets one app whose every string field (description, route, health, webhook,
WebSocket and static paths, query and body schema keys and values, respond JSON strings,
keys and headers, run inputs and task, webhook event names, static dir) holds it. Names of
projects, apps, tasks, secrets and `allow:` entries are DNS labels, so no payload fits there.
The modules are imported in one fresh process that calls each endpoint through a TestClient.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.compiler import compile_spec, write_build
from engine.errors import SpecError
from engine.load import load_spec
from tests.compiler.compile_helpers import base_env, run_python

PAYLOADS = {
    "single-quote": "'",
    "double-quote": '"',
    "triple-double": '"""',
    "triple-single": "'''",
    "newlines": "a\nb\r\nc",
    "backslashes": "a\\b\\",
    "control-chars": "\x01\x1b\x7f\tz",
    "braces": "{}",
    "jinja-braces": "{{ 7 * 7 }}",
    "dunder-import": "__import__('os').system('touch PWNED')",
    "string-breakout": '"); import os; os.system("touch PWNED"); ("',
    "unicode": "😀 \u200f\u202e \u2028 é",
    "mixed": "'\"\\\n{{}}\"\"\"'''",
}
IDS = list(PAYLOADS)
SECRET = "whsec_" + base64.b64encode(b"a-signing-secret-of-some-length").decode()


def sendable(text: str) -> bool:
    """Whether HTTP allows `text` as a header value (tab and printable Latin-1 only)."""
    return all(c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff" for c in text)


def _path(text: str) -> str:
    """`text` as validation allows it in a path: braces mark parameters."""
    return text.replace("{", "(").replace("}", ")")


def _app(payload: str, n: int) -> dict:
    p = _path(payload)
    respond = {"json": {payload: payload, "list": [payload]}}
    return {
        "description": payload,
        "health": f"/health{p}",
        "routes": [
            {"method": "GET", "path": f"/r{p}", "respond": respond},
            {
                "method": "GET",
                "path": "/h",
                "respond": {"json": 1, "headers": {"X-P": payload} if sendable(payload) else {}},
            },
            {
                "method": "GET",
                "path": "/q",
                "query": {payload: {"type": "string", "description": payload}},
                "respond": {"json": "${{ query }}"},
            },
            {
                "method": "POST",
                "path": "/b",
                "body": {
                    "type": "object",
                    "properties": {payload: {"type": "string", "description": payload}},
                    "required": [payload],
                },
                "respond": {"json": "${{ body }}"},
            },
            {
                "method": "POST",
                "path": "/run/{name}",
                "run": {
                    "task": "${{ path.name }}" + payload,
                    "allow": ["tt"],
                    "inputs": {payload: payload},
                },
            },
            {"method": "POST", "path": "/run", "run": {"task": "tt", "inputs": {payload: payload}}},
        ],
        "webhooks": [
            {
                "path": f"/w{p}",
                "provider": "standard",
                "secret": "signing",
                "events": {payload: {"respond": {"json": payload}}},
            }
        ],
        "websockets": [{"path": f"/ws{p}", "pattern": "echo"}],
        "static": {"path": "/s", "dir": f"static-{n}{payload}"},
    }


CHECK = r"""
    import base64, hashlib, hmac, importlib.util, json, time, urllib.parse, warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient
    from pathlib import Path

    payloads = json.loads(Path("payloads.json").read_text(encoding="utf-8"))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    results = {}
    for n, payload in enumerate(payloads):
        p = payload.replace("{", "(").replace("}", ")")
        q = lambda path: urllib.parse.quote(path, safe="/()")
        file = f"{BUILD}/p{n}/_engine_app.py"
        spec = importlib.util.spec_from_file_location(f"p{n}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out = results[n] = {}
        with TestClient(module.app, base_url="http://127.0.0.1") as c:
            out["health"] = c.get(q(f"/health{p}")).json()
            out["description"] = c.get("/openapi.json").json()["info"]["description"]
            out["respond"] = c.get(q(f"/r{p}")).json()
            if payload.isascii() and payload.isprintable():  # what an ASCII client reads back
                out["header"] = c.get("/h").headers["x-p"]
            out["query"] = c.get("/q", params={payload: "v"}).json()
            out["body"] = c.post("/b", json={payload: "v"}).json()
            out["body_missing"] = c.post("/b", json={}).status_code
            out["run_not_allowed"] = c.post("/run/tt").status_code
            body = json.dumps({"type": payload}).encode()
            stamp = str(int(time.time()))
            signed = hmac.new(key, f"id-{n}.{stamp}.".encode() + body, hashlib.sha256)
            headers = {
                "webhook-id": f"id-{n}",
                "webhook-timestamp": stamp,
                "webhook-signature": "v1," + base64.b64encode(signed.digest()).decode(),
                "content-type": "application/json",
            }
            answer = c.post(q(f"/w{p}"), content=body, headers=headers)
            out["webhook"] = [answer.status_code, answer.json()]
            with c.websocket_connect("ws://127.0.0.1" + q(f"/ws{p}")) as ws:
                ws.send_text("x")
                out["websocket"] = ws.receive_text()
            out["static"] = c.get("/s/").text
    print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("project")
    values = list(PAYLOADS.values())
    spec = {
        "version": 1,
        "project": "inject",
        "secrets": {"signing": {"env": "SIGNING"}},
        "tasks": {"tt": {"handler": "tasks:t"}},
        "apps": {f"p{n}": _app(v, n) for n, v in enumerate(values)},
    }
    text = yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    (root / "spec.yaml").write_text(text, encoding="utf-8")
    (root / "tasks.py").write_text("def t(**inputs):\n    return inputs\n", encoding="utf-8")
    (root / "payloads.json").write_text(json.dumps(values), encoding="utf-8")
    for n, value in enumerate(values):
        folder = root / f"static-{n}{value}"
        folder.mkdir()
        (folder / "index.html").write_text(value, encoding="utf-8")
    build = compile_spec(load_spec(root / "spec.yaml", environ={"SIGNING": SECRET}))
    for artifact in build.apps.values():
        compile(artifact.source, f"{artifact.name}.py", "exec")
    out = root / ".engine" / "build"
    write_build(build, out)
    code = CHECK.replace("SECRET", repr(SECRET)).replace("{BUILD}", str(out))
    env = base_env(
        SIGNING=SECRET,
        ENGINE_API_URL="http://127.0.0.1:9/api/v1/runs",
        ENGINE_DATA_DIR=str(root / ".engine" / "data"),
    )
    found = run_python(code, cwd=root, env=env, path=[root])
    pwned = [*root.rglob("PWNED"), *Path.cwd().rglob("PWNED")]
    return {"results": found, "pwned": pwned, "build": out}


def test_nothing_was_executed(results: dict) -> None:
    assert results["pwned"] == []


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=IDS)
def test_every_field_keeps_the_payload(results: dict, payload: str) -> None:
    got = results["results"][str(list(PAYLOADS.values()).index(payload))]
    expected = {
        "health": {"status": "healthy"},
        "description": payload,
        "respond": {payload: payload, "list": [payload]},
        "query": {payload: "v"},
        "body": {payload: "v"},
        "body_missing": 422,
        "run_not_allowed": 403,
        "webhook": [200, payload],
        "websocket": "Echo: x",
        "static": payload,
    }
    if payload.isascii() and payload.isprintable():
        expected["header"] = payload
    assert got == expected


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_hostile_strings_are_written_as_ruff_would(results: dict) -> None:
    command = [sys.executable, "-m", "ruff", "format", "--line-length", "100", "--diff"]
    done = subprocess.run([*command, "--no-cache", str(results["build"])], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize("payload", [p for p in PAYLOADS.values() if not sendable(p)])
def test_a_header_value_http_cannot_send_is_a_validation_error(
    payload: str, tmp_path: Path
) -> None:
    spec = {
        "version": 1,
        "project": "shop",
        "apps": {
            "web": {
                "routes": [{"method": "GET", "path": "/", "respond": {"headers": {"X-P": payload}}}]
            }
        },
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "spec.yaml", environ={})
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.path == "apps.web.routes[0].respond.headers.X-P"
    assert "printable Latin-1" in diagnostic.message
