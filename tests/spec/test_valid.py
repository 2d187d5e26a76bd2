"""Valid specs: the examples of SPEC.md pass, and the model says what the spec meant."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import SpecError
from engine.load import Checked, check_spec, load_spec
from engine.resources import schema_path
from engine.spec.model import (
    Auth,
    Grant,
    HandlerAction,
    ProxyAction,
    RespondAction,
    RunAction,
    SecretSource,
    Static,
)

WriteSpec = Callable[..., Path]

WHOLE_SPEC = """\
# yaml-language-server: $schema=../../schemas/engine.schema.json
version: 1                      # required; only 1 exists today
project: shop                   # required; DNS label: ^[a-z][a-z0-9-]{0,61}[a-z0-9]$

secrets:                        # name -> where its value comes from (exactly one source)
  webhook-api-key: {env: WEBHOOK_API_KEY}     # the applying user's environment
  github-secret:   {file: secrets/github.txt} # path relative to the spec file
  # {env_file: .env, key: NAME} reads one key of a dotenv file

tasks:                          # batch work, run by the engine's runner
  add-one:
    handler: tasks:add_one_task # module:function, importable from the spec's folder
    inputs:                     # JSON Schema per input; validated before a run is accepted
      x: {type: integer}
    depends_on: [add-one-app]   # apps this task calls: deployed first, endpoint injected
    secrets: [github-secret]    # see "Secrets"
    env: {LOG_LEVEL: info}
    retries: 2                  # extra attempts after a failure (default 0)
    timeout: 60                 # seconds, or "90s" / "5m" / "1h"

apps:                           # long-running HTTP/WebSocket services
  add-one-app:
    description: Adds one to x.
    routes:
      - {method: GET, path: /, query: {x: {type: integer}}, handler: handlers:add_one}
"""

WEBHOOKS_SNIPPET = """\
webhooks:
  - path: /github-webhook
    provider: github            # github | standard (Standard Webhooks / Svix) | plain
    secret: github-secret       # or secrets: [current, previous] for rotation
    events:                     # event name -> action (run | respond), github/standard only
      push: {run: {task: deploy, inputs: {commit: "${{ body.after }}"}}}
    max_body: 25MB              # default 25MB (GitHub's own limit)
    dedupe: 72h                 # the same delivery id within this window starts nothing new
"""

WEBSOCKETS_SNIPPET = """\
websockets:
  - {path: /echo, pattern: echo}                 # each text frame back as "Echo: <text>"
  - {path: /broadcast, pattern: broadcast}       # each frame to every client, sender too
  - {path: /chat/{room}, pattern: chat}          # each frame to the others in the same room
  - {path: /stream, pattern: stream, source: feeds:next_value, interval: 1}  # server push, JSON
  - {path: /task-runner, pattern: task-runner}   # JSON {task, inputs} in; run id, then status
  - {path: /custom, handler: ws:handle}          # the user's async function(websocket)
"""

HEAD = "version: 1\nproject: shop\n"


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write spec text (dedented) to a fresh file in tmp_path and return its path."""
    count = 0

    def write(text: str, name: str | None = None) -> Path:
        nonlocal count
        count += 1
        path = tmp_path / (name or f"spec{count}.yaml")
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def _app(snippet: str, extra: str = "") -> str:
    """A spec with one app `web` whose body is `snippet`, plus top-level `extra`."""
    body = textwrap.indent(snippet, "    ")
    return HEAD + extra + "apps:\n  web:\n" + body


def _check(path: Path, environ: dict[str, str] | None = None) -> Checked:
    return check_spec(path, environ={} if environ is None else environ)


# the examples of SPEC.md --------------------------------------------------------------


def test_whole_spec(write_spec: WriteSpec) -> None:
    checked = _check(write_spec(WHOLE_SPEC))
    assert checked.warnings == []
    spec = checked.spec
    assert (spec.version, spec.project) == (1, "shop")
    assert spec.secrets == {
        "webhook-api-key": SecretSource("webhook-api-key", env="WEBHOOK_API_KEY"),
        "github-secret": SecretSource("github-secret", file="secrets/github.txt"),
    }
    task = spec.tasks["add-one"]
    assert task.handler == HandlerAction("tasks", "add_one_task")
    assert task.inputs == {"x": {"type": "integer"}}
    assert task.depends_on == ("add-one-app",)
    assert task.grants == (Grant("github-secret", "GITHUB_SECRET"),)
    assert task.env == {"LOG_LEVEL": "info"}
    assert (task.retries, task.timeout) == (2, 60.0)
    app = spec.apps["add-one-app"]
    assert app.description == "Adds one to x."
    assert (app.port, app.health, app.replicas, app.generated) == (None, "/health", 1, True)
    (route,) = app.routes
    assert (route.method, route.path, route.query) == ("GET", "/", {"x": {"type": "integer"}})
    assert route.action == HandlerAction("handlers", "add_one")
    assert spec.path == spec.root / spec.path.name
    assert len(spec.sha256) == 64


def test_webhooks_snippet(write_spec: WriteSpec) -> None:
    extra = "secrets:\n  github-secret: {env: GITHUB_SECRET}\ntasks:\n  deploy: {handler: t:d}\n"
    spec = load_spec(write_spec(_app(WEBHOOKS_SNIPPET, extra)), environ={})
    (hook,) = spec.apps["web"].webhooks
    assert (hook.path, hook.provider, hook.secrets) == (
        "/github-webhook",
        "github",
        ("github-secret",),
    )
    assert hook.events == {"push": RunAction("deploy", {"commit": "${{ body.after }}"})}
    assert (hook.max_body, hook.dedupe) == (25_000_000, 72 * 3600.0)


def test_websockets_snippet(write_spec: WriteSpec) -> None:
    # SPEC.md writes `{path: /chat/{room}, ...}`, which is not YAML: inside {...} a bare `{`
    # opens a mapping. The path must be quoted (corpus/59 pins the message for the bare form).
    snippet = WEBSOCKETS_SNIPPET.replace("path: /chat/{room},", "path: '/chat/{room}',")
    checked = _check(write_spec(_app(snippet)))
    assert checked.warnings == []
    sockets = checked.spec.apps["web"].websockets
    assert [(s.path, s.pattern) for s in sockets] == [
        ("/echo", "echo"),
        ("/broadcast", "broadcast"),
        ("/chat/{room}", "chat"),
        ("/stream", "stream"),
        ("/task-runner", "task-runner"),
        ("/custom", None),
    ]
    assert sockets[3].source == HandlerAction("feeds", "next_value")
    assert sockets[3].interval == 1.0
    assert sockets[5].handler == HandlerAction("ws", "handle")


def test_all_actions_and_rotation(write_spec: WriteSpec) -> None:
    spec = load_spec(
        write_spec(
            """\
            version: 1
            project: shop
            secrets:
              current: {env: CURRENT}
              previous: {env_file: .env, key: PREVIOUS}
            tasks:
              deploy: {handler: tasks.deploy:run}
              cleanup: {handler: tasks:cleanup}
            apps:
              api: {}
              web:
                depends_on: [api]
                static: {path: /ui, dir: web/}
                routes:
                  - {method: GET, path: /, respond: {status: 201, json: {hi: "${{ query.n }}"}}}
                  - {method: POST, path: /deploy, run: {task: deploy, wait: 90s}}
                  - method: POST
                    path: /run/{name}
                    run: {task: "${{ path.name }}", allow: [deploy, cleanup], wait: true}
                  - {method: GET, path: "/items/{id}", proxy: {app: api, path: "/x/{id}"}}
                webhooks:
                  - path: /std
                    provider: standard
                    secrets: [current, previous]
                    events: {order.created: {respond: {status: 204}}}
                  - path: /plain
                    provider: plain
                    action: {run: {task: cleanup}}
                    max_body: 64 KiB
                    dedupe: 250ms
            """
        ),
        environ={},
    )
    web = spec.apps["web"]
    assert spec.secrets["previous"].describe() == "key PREVIOUS of .env"
    assert spec.tasks["deploy"].handler == HandlerAction("tasks.deploy", "run")
    assert web.static == Static("/ui", "web/")
    assert [r.action for r in web.routes] == [
        RespondAction(201, {"hi": "${{ query.n }}"}),
        RunAction("deploy", None, 90.0),
        RunAction("${{ path.name }}", None, True, ("deploy", "cleanup")),
        ProxyAction("api", "/x/{id}"),
    ]
    std, plain = web.webhooks
    assert std.secrets == ("current", "previous")
    assert std.events == {"order.created": RespondAction(204)}
    assert (plain.action, plain.max_body, plain.dedupe) == (RunAction("cleanup"), 65536, 0.25)


# x- keys ---------------------------------------------------------------------------------


def test_x_keys_at_every_level_are_ignored(write_spec: WriteSpec) -> None:
    text = """\
        version: 1
        project: shop
        x-top: {anything: [1, 2]}
        secrets:
          api-token: {env: API_TOKEN, x-owner: ops}
        tasks:
          deploy: {handler: tasks:deploy, x-team: infra}
        apps:
          web:
            x-note: kept for my tooling
            auth: {bearer: api-token, x-why: internal}
            secrets: [{name: api-token, env: TOKEN, x-a: 1}]
            static: {path: /ui, dir: web/, x-cache: true}
            routes:
              - {method: GET, path: /, x-r: 1, respond: {json: ok, x-s: 2}}
              - {method: POST, path: /d, run: {task: deploy, x-t: 3}}
              - method: GET
                path: /k
                auth: {api_key: {secret: api-token, x-h: 1}, x-k: 2}
                handler: h:k
            webhooks:
              - {path: /h, provider: plain, action: {respond: {}, x-w: 1}, x-hook: 1}
            websockets:
              - {path: /echo, pattern: echo, x-ws: 1}
        """
    without = "\n".join(line for line in textwrap.dedent(text).splitlines() if "x-top" not in line)
    for drop in ("x-owner: ops", "x-team: infra", "x-why: internal", "x-a: 1", "x-cache: true"):
        without = without.replace(", " + drop, "")
    for drop in ("x-r: 1, ", ", x-s: 2", ", x-t: 3", ", x-h: 1", ", x-k: 2", ", x-w: 1"):
        without = without.replace(drop, "")
    without = without.replace(", x-hook: 1", "").replace(", x-ws: 1", "")
    without = without.replace("    x-note: kept for my tooling\n", "")
    assert "x-" not in without
    with_x = load_spec(write_spec(text), environ={})
    plain = load_spec(write_spec(without), environ={})
    assert with_x.apps == plain.apps
    assert with_x.tasks == plain.tasks
    assert with_x.secrets == plain.secrets
    assert with_x.apps["web"].routes[2].action == HandlerAction("h", "k")


# interpolation and env values --------------------------------------------------------------


def test_interpolation(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        apps:
          web:
            env:
              API_BASE: ${API_BASE}
              REGION: ${REGION:-eu-west-1}
              EMPTY: ${UNSET_WITH_EMPTY_DEFAULT:-}
              URL: http://${HOST:-localhost}:${PORT}/x
              LITERAL: $${NOT_A_VAR}
              EXPR: $${{ body }}
            routes:
              - {method: GET, path: /, respond: {json: "${{ query.x }}"}}
        """
    )
    spec = load_spec(path, environ={"API_BASE": "https://api.test", "PORT": "81"})
    assert spec.apps["web"].env == {
        "API_BASE": "https://api.test",
        "REGION": "eu-west-1",
        "EMPTY": "",
        "URL": "http://localhost:81/x",
        "LITERAL": "${NOT_A_VAR}",
        "EXPR": "${{ body }}",
    }
    # request-time expressions pass through untouched
    assert spec.apps["web"].routes[0].action == RespondAction(200, "${{ query.x }}")
    set_region = load_spec(path, environ={"API_BASE": "a", "PORT": "1", "REGION": "us-east-2"})
    assert set_region.apps["web"].env["REGION"] == "us-east-2"


def test_env_values_kept_as_written(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        tasks:
          deploy:
            handler: tasks:deploy
            env:
              DEBUG: yes
              MODE: off
              V: 1.10
              N: 007
              HEX: 0x1F
              BIG: 1e3
              Q: "quoted"
        """
    )
    env = load_spec(path, environ={}).tasks["deploy"].env
    assert env == {
        "DEBUG": "yes",
        "MODE": "off",
        "V": "1.10",
        "N": "007",
        "HEX": "0x1F",
        "BIG": "1e3",
        "Q": "quoted",
    }


# the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("60", 60.0), ("2.5", 2.5), ('"90s"', 90.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_durations_in_seconds(write_spec: WriteSpec, written: str, seconds: float) -> None:
    path = write_spec(HEAD + f"tasks:\n  deploy: {{handler: t:d, timeout: {written}}}\n")
    assert load_spec(path, environ={}).tasks["deploy"].timeout == seconds


@pytest.mark.parametrize(
    ("written", "size"),
    [("1048576", 1048576), ("25MB", 25_000_000), ("64 KiB", 65536), ("1GiB", 2**30)],
)
def test_sizes_in_bytes(write_spec: WriteSpec, written: str, size: int) -> None:
    path = write_spec(
        _app(f"websockets:\n  - {{path: /e, pattern: echo, max_message: {written}}}\n")
    )
    assert load_spec(path, environ={}).apps["web"].websockets[0].max_message == size


def test_defaults(write_spec: WriteSpec) -> None:
    extra = "secrets:\n  s1: {env: S1}\n"
    spec = load_spec(write_spec(_app("webhooks:\n  - {path: /h, secret: s1, events: {}}\n", extra)))
    hook = spec.apps["web"].webhooks[0]
    assert (hook.provider, hook.max_body, hook.dedupe) == ("github", 25_000_000, 259200.0)


def test_grants(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        secrets:
          github-secret: {env: GH}
          db-password: {env: DB}
          tls-key: {file: tls.key}
        apps:
          web:
            secrets:
              - github-secret
              - {name: db-password, env: PGPASSWORD}
              - {name: tls-key, file: true}
        """
    )
    assert load_spec(path, environ={}).apps["web"].grants == (
        Grant("github-secret", "GITHUB_SECRET"),
        Grant("db-password", "PGPASSWORD"),
        Grant("tls-key", "TLS_KEY", as_file=True),
    )


def test_auth_inheritance_flags(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        secrets:
          api-token: {env: API_TOKEN}
          api-key: {env: API_KEY}
        apps:
          web:
            auth: {bearer: api-token}
            routes:
              - {method: GET, path: /inherits, handler: h:a}
              - {method: GET, path: /open, auth: none, handler: h:b}
              - {method: GET, path: /key, auth: {api_key: {secret: api-key}}, handler: h:c}
              - method: GET
                path: /hdr
                auth: {api_key: {header: X-Token, secret: api-key}}
                handler: h:d
            websockets:
              - {path: /ws, pattern: echo, auth: none}
          open-app:
            auth: none
            routes:
              - {method: GET, path: /, handler: h:e}
        """
    )
    spec = load_spec(path, environ={})
    web = spec.apps["web"]
    assert web.auth == Auth("bearer", "api-token")
    assert [(r.auth, r.open) for r in web.routes] == [
        (None, False),
        (None, True),
        (Auth("api_key", "api-key", "X-API-Key"), False),
        (Auth("api_key", "api-key", "X-Token"), False),
    ]
    assert (web.websockets[0].auth, web.websockets[0].open) == (None, True)
    assert spec.apps["open-app"].auth is None


def test_command_app(write_spec: WriteSpec) -> None:
    path = write_spec(_app("command: [python, server.py, --port, '{port}']\nport: 8501\n"))
    app = load_spec(path, environ={}).apps["web"]
    assert (app.command, app.generated, app.port) == (
        ("python", "server.py", "--port", "{port}"),
        False,
        8501,
    )


def test_yaml_anchors_and_merge_keys(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        x-base: &base {handler: tasks:run, retries: 3}
        tasks:
          one: {<<: *base}
          two: {<<: *base, retries: 0}
        """
    )
    tasks = load_spec(path, environ={}).tasks
    assert (tasks["one"].retries, tasks["two"].retries) == (3, 0)


# warnings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["broadcast", "chat"])
def test_one_process_patterns_warn_with_replicas(write_spec: WriteSpec, pattern: str) -> None:
    socket_path = "/room/{room}" if pattern == "chat" else "/all"
    line = f"      - {{path: '{socket_path}', pattern: {pattern}}}"
    path = write_spec(HEAD + "apps:\n  web:\n    replicas: 3\n    websockets:\n" + line + "\n")
    (warning,) = _check(path).warnings
    column = line.index(f" {pattern}}}") + 2
    assert (warning.line, warning.col, warning.path) == (
        7,
        column,
        "apps.web.websockets[0].pattern",
    )
    assert warning.message == (
        f"{pattern} keeps its clients in one process, but app 'web' has 3 replicas: "
        "clients on different replicas won't see each other"
    )


def test_no_warning_with_one_replica(write_spec: WriteSpec) -> None:
    path = write_spec(_app("replicas: 1\nwebsockets:\n  - {path: /all, pattern: broadcast}\n"))
    assert _check(path).warnings == []


# the command line --------------------------------------------------------------------------


def test_cli_validate_valid(write_spec: WriteSpec) -> None:
    path = write_spec(WHOLE_SPEC)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: valid (1 app, 1 task)\n"
    assert result.stderr == ""


def test_cli_validate_prints_warnings(write_spec: WriteSpec) -> None:
    path = write_spec(_app("replicas: 2\nwebsockets:\n  - {path: /all, pattern: broadcast}\n"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: valid (1 app, 0 tasks)\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:7:31: apps.web.websockets[0].pattern: broadcast keeps")
    assert line.endswith(" (warning)")


def test_cli_validate_json_valid(write_spec: WriteSpec) -> None:
    path = write_spec(_app("replicas: 2\nwebsockets:\n  - {path: /all, pattern: broadcast}\n"))
    result = CliRunner().invoke(main, ["validate", "--json", str(path)])
    assert result.exit_code == 0
    assert result.stderr == ""
    out = json.loads(result.stdout)
    assert (out["valid"], out["errors"]) == (True, [])
    (warning,) = out["warnings"]
    assert warning == {
        "file": str(path),
        "line": 7,
        "col": 31,
        "path": "apps.web.websockets[0].pattern",
        "message": warning["message"],
    }
    assert "2 replicas" in warning["message"]


def test_cli_validate_json_invalid(write_spec: WriteSpec) -> None:
    path = write_spec(HEAD + "apps:\n  web:\n    port: 0\n    portt: 1\n")
    result = CliRunner().invoke(main, ["validate", "--json", str(path)])
    assert result.exit_code == 1
    assert result.stderr == ""
    assert json.loads(result.stdout) == {
        "valid": False,
        "errors": [
            {
                "file": str(path),
                "line": 5,
                "col": 11,
                "path": "apps.web.port",
                "message": "0 is too small; the least allowed is 1",
            },
            {
                "file": str(path),
                "line": 6,
                "col": 5,
                "path": "apps.web.portt",
                "message": "unknown key 'portt'; did you mean 'port'?",
            },
        ],
    }


def test_cli_validate_reports_every_problem_at_once(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEAD + "apps:\n  web:\n    depends_on: [api]\n  other:\n    depends_on: [db]\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    known = "the apps are: other, web"
    assert result.stderr.splitlines() == [
        f"{path}:5:18: apps.web.depends_on[0]: there is no app named 'api'; {known}",
        f"{path}:7:18: apps.other.depends_on[0]: there is no app named 'db'; {known}",
    ]


def test_cli_schema_prints_the_file_exactly(tmp_path: Path) -> None:
    script = shutil.which("engine")
    command = [script] if script else [sys.executable, "-c", "from engine.cli import main; main()"]
    result = subprocess.run([*command, "schema"], capture_output=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout == schema_path().read_bytes()
    json.loads(result.stdout)


# expressions -------------------------------------------------------------------------------


def test_expressions_are_text_outside_actions(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        tasks:
          deploy:
            handler: tasks:deploy
            description: "Inputs may say ${{ like this"
            env: {TEMPLATE: "${{ unclosed"}
        """
    )
    spec = load_spec(path, environ={})
    assert spec.tasks["deploy"].env == {"TEMPLATE": "${{ unclosed"}


def test_expressions_in_webhook_actions_are_checked(write_spec: WriteSpec) -> None:
    path = write_spec(
        """\
        version: 1
        project: shop
        tasks:
          deploy: {handler: tasks:deploy}
        apps:
          web:
            webhooks:
              - path: /hook
                provider: plain
                action: {run: {task: deploy, inputs: {sha: "${{ body.after + }}"}}}
        """
    )
    with pytest.raises(SpecError) as caught:
        check_spec(path, environ={})
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.col) == (10, 52)
    assert diagnostic.path == "apps.web.webhooks[0].action.run.inputs.sha"
    assert diagnostic.message.startswith("expression error in '${{ body.after + }}': column 1:")


def test_whole_variable_in_a_number_field_is_a_number(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nproject: shop\napps:\n  web:\n    port: ${PORT:-8080}\n"
        "    command: [python, server.py]\n    env:\n      A: ${PORT:-8080}\n"
        '      B: "${PORT:-8080}"\n      C: ${FLAG:-yes}\n'
    )
    app = check_spec(spec, environ={}).spec.apps["web"]
    assert app.port == 8080
    assert app.env == {"A": "8080", "B": "8080", "C": "yes"}
    assert check_spec(spec, environ={"PORT": "9000"}).spec.apps["web"].port == 9000


def test_diagnostics_name_the_file_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spec.yaml").write_text("version: 2\nproject: shop\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        check_spec(Path("spec.yaml"), environ={})
    assert str(caught.value.diagnostics[0]).startswith("spec.yaml:1:10: version: ")


def test_dates_and_binary_keep_the_text_they_were_written_as(tmp_path: Path) -> None:
    # A spec holds JSON values; YAML would read these as a date and bytes.
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nproject: shop\napps:\n  web:\n    description: 2024-01-01\n"
        "    routes:\n      - method: GET\n        path: /\n"
        "        respond: {json: {when: 2024-01-01, raw: !!binary aGk=}}\n"
    )
    app = check_spec(spec, environ={}).spec.apps["web"]
    assert app.description == "2024-01-01"
    assert app.routes[0].action.json == {"when": "2024-01-01", "raw": "aGk="}


# what is computed once per spec still holds for each app ------------------------------

SHARED_AUTH = """\
version: 1
project: shop
secrets:
  key-a: {env: KEY_A}
  key-b: {env: KEY_B}
apps:
  front:
    depends_on: [api-a, api-b]
    routes: [{method: GET, path: /, respond: {status: 200}}]
  side:
    depends_on: [api-b]
    routes: [{method: GET, path: /, respond: {status: 200}}]
  api-a:
    auth: {bearer: key-a, apps: [front]}
    routes: [{method: GET, path: /, respond: {status: 200}}]
  api-b:
    auth: {bearer: key-b, apps: [side, front]}
    routes: [{method: GET, path: /, respond: {status: 200}}]
"""


def test_each_caller_gets_the_credentials_of_the_apps_that_let_it_call(
    write_spec: WriteSpec,
) -> None:
    spec = load_spec(write_spec(SHARED_AUTH), environ={"KEY_A": "x", "KEY_B": "y"})
    assert [c.app for c in spec.apps["front"].credentials] == ["api-a", "api-b"]
    assert [c.app for c in spec.apps["side"].credentials] == ["api-b"]
    assert spec.apps["api-a"].credentials == spec.apps["api-b"].credentials == ()


def test_a_bad_schema_repeated_in_several_routes_is_reported_at_each(
    write_spec: WriteSpec,
) -> None:
    route = "  - {method: GET, path: /%d, query: {n: {type: integr}}, respond: {status: 200}}\n"
    routes = "".join(route % i for i in range(3))
    with pytest.raises(SpecError) as refused:
        _check(write_spec(HEAD + "apps:\n  web:\n    routes:\n" + textwrap.indent(routes, "    ")))
    found = [(d.line, d.path) for d in refused.value.diagnostics]
    assert found == [(6 + i, f"apps.web.routes[{i}].query.n.type") for i in range(3)]


def test_a_task_listed_in_auth_tasks_gets_the_credential_and_a_namesake_app_does_not(
    write_spec: WriteSpec,
) -> None:
    text = """\
version: 1
project: shop
secrets:
  key-b: {env: KEY_B}
apps:
  api-b:
    auth: {api_key: {secret: key-b, header: X-Key}, tasks: [report]}
    routes: [{method: GET, path: /, respond: {status: 200}}]
  report:
    depends_on: [api-b]
    routes: [{method: GET, path: /, respond: {status: 200}}]
tasks:
  report: {handler: "report:run", depends_on: [api-b]}
  other: {handler: "report:run", depends_on: [api-b]}
"""
    spec = load_spec(write_spec(text), environ={"KEY_B": "y"})
    (credential,) = spec.tasks["report"].credentials
    assert (credential.app, credential.secret, credential.kind) == ("api-b", "key-b", "api_key")
    assert (credential.header, credential.variable) == ("X-Key", "ENGINE_CREDENTIAL_API_B")
    assert spec.tasks["other"].credentials == ()
    assert spec.apps["report"].credentials == ()
    assert spec.apps["api-b"].auth is not None and spec.apps["api-b"].auth.tasks == ("report",)
