"""Every file in `corpus/` holds exactly one fault; each must give exactly one diagnostic,
at the right place, saying the right thing, through the Python API and the real CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import Diagnostic, SpecError
from engine.load import check_spec

CORPUS = Path(__file__).parent / "corpus"
NAME_RULE = "use 2 to 63 lower-case letters, digits and '-'"

# file stem -> (line, col, JSON path, a phrase the message must contain)
EXPECTED: dict[str, tuple[int, int, str, str]] = {
    "01-missing-version": (1, 1, "$", "missing required key 'version'"),
    "02-missing-project": (1, 1, "$", "missing required key 'project'"),
    "03-route-missing-method": (6, 9, "apps.web.routes[0]", "missing required key 'method'"),
    "04-task-missing-handler": (5, 5, "tasks.add-one", "missing required key 'handler'"),
    "05-unknown-top-level-key": (3, 1, "secret", "unknown key 'secret'; did you mean 'secrets'?"),
    "06-unknown-app-key": (
        5,
        5,
        "apps.web.dependson",
        "unknown key 'dependson'; did you mean 'depends_on'?",
    ),
    "07-unknown-route-key": (
        8,
        9,
        "apps.web.routes[0].querry",
        "unknown key 'querry'; did you mean 'query'?",
    ),
    "08-unknown-webhook-key": (
        14,
        9,
        "apps.web.webhooks[0].dedup",
        "unknown key 'dedup'; did you mean 'dedupe'?",
    ),
    "09-port-is-text": (5, 11, "apps.web.port", "expected a whole number, got '8080'"),
    "10-routes-is-mapping": (6, 7, "apps.web.routes", "expected a list, got a mapping"),
    "11-name-upper-case": (4, 3, "apps.Web", f"'Web' is not a valid name: {NAME_RULE}"),
    "12-name-underscore": (4, 3, "apps.my_app", f"'my_app' is not a valid name: {NAME_RULE}"),
    "13-name-one-letter": (4, 3, "tasks.a", f"'a' is not a valid name: {NAME_RULE}"),
    "14-name-trailing-dash": (4, 3, "secrets.api-", f"'api-' is not a valid name: {NAME_RULE}"),
    "15-name-too-long": (2, 10, "project", "64 characters long"),
    "16-duplicate-key": (6, 5, "apps.web.port", "duplicate key 'port' (first at line 5)"),
    "17-unknown-depends-on": (
        5,
        18,
        "apps.web.depends_on[0]",
        "there is no app named 'backend'; did you mean 'backed'?",
    ),
    "18-unknown-secret-grant": (
        8,
        15,
        "tasks.deploy.secrets[0]",
        "there is no secret named 'github-token'; did you mean 'github-secret'?",
    ),
    "19-unknown-auth-secret": (
        7,
        20,
        "apps.web.auth.bearer",
        "there is no secret named 'api-key'; did you mean 'api-token'?",
    ),
    "20-unknown-webhook-secret": (
        11,
        17,
        "apps.web.webhooks[0].secret",
        "there is no secret named 'gihtub-secret'; did you mean 'github-secret'?",
    ),
    "21-unknown-proxy-target": (
        7,
        45,
        "apps.web.routes[0].proxy.app",
        "there is no app named 'backend'; the apps are: api, web",
    ),
    "22-unknown-run-task": (
        8,
        51,
        "apps.web.routes[0].run.task",
        "there is no task named 'depoly'; did you mean 'deploy'?",
    ),
    "23-unknown-allow-task": (
        12,
        27,
        "apps.web.routes[0].run.allow[1]",
        "there is no task named 'cleanup'",
    ),
    "24-proxy-not-in-depends-on": (
        6,
        45,
        "apps.web.routes[0].proxy.app",
        "'api' must be in its depends_on",
    ),
    "25-cycle-two-apps": (
        5,
        18,
        "apps.api.depends_on[0]",
        "dependency cycle: api -> web -> api",
    ),
    "26-cycle-three-apps": (
        5,
        18,
        "apps.api.depends_on[0]",
        "dependency cycle: api -> db -> web -> api",
    ),
    "27-self-dependency": (5, 18, "apps.web.depends_on[0]", "app 'web' depends on itself"),
    "28-duplicate-route": (
        7,
        29,
        "apps.web.routes[1].path",
        "GET /items is already declared in app 'web' (line 6)",
    ),
    "29-duplicate-route-parameter-names": (
        7,
        29,
        "apps.web.routes[1].path",
        "GET /x/{b} is already declared in app 'web' (line 6)",
    ),
    "30-route-on-health-path": (
        6,
        29,
        "apps.web.routes[0].path",
        "(the health check); set `health:` to another path",
    ),
    "31-port-clash": (7, 11, "apps.api.port", "port 8080 is already used by app 'web'"),
    "32-port-out-of-range": (5, 11, "apps.web.port", "70000 is too large; the most allowed is"),
    "33-handler-no-colon": (5, 14, "tasks.deploy.handler", "write module:function"),
    "34-handler-space": (5, 14, "tasks.deploy.handler", "write module:function"),
    "35-handler-keyword": (5, 14, "tasks.deploy.handler", "'class' is a Python keyword"),
    "36-expression-syntax": (
        8,
        25,
        "apps.web.routes[0].respond.json",
        "expression error in '${{ body. }}'",
    ),
    "37-duration-bad": (6, 14, "tasks.deploy.timeout", "'5x' is not valid here; expected a length"),
    "38-size-bad": (
        13,
        19,
        "apps.web.webhooks[0].max_body",
        "'25 parsecs' is not valid here; expected a size",
    ),
    "39-tab-indent": (5, 1, "$", "tab character"),
    "40-empty-file": (1, 1, "$", "the file is empty"),
    "41-top-level-list": (1, 1, "$", "the top level is a list"),
    "42-top-level-scalar": (1, 1, "$", "the top level is the value 'shop'"),
    "43-key-on": (6, 7, "apps.web.env.on", "YAML 1.1 reads on as the boolean true"),
    "44-key-number": (4, 3, "apps.1", "key '1' is not a string"),
    "45-health-on": (
        5,
        13,
        "apps.web.health",
        "expected a string, got true (YAML 1.1 reads on as the boolean true)",
    ),
    "46-missing-env-var": (
        6,
        17,
        "apps.web.env.API_BASE",
        "environment variable ENGINE_TEST_UNSET_API_BASE is not set",
    ),
    "47-two-documents": (4, 1, "$", "a spec file holds one YAML document"),
    "48-route-two-actions": (
        6,
        9,
        "apps.web.routes[0]",
        "has handler and respond; give exactly one of",
    ),
    "49-route-no-action": (6, 9, "apps.web.routes[0]", "needs one of: handler, respond, run"),
    "50-webhook-secret-and-secrets": (11, 9, "apps.web.webhooks[0]", "'secret' or 'secrets'"),
    "51-github-webhook-without-secret": (
        8,
        9,
        "apps.web.webhooks[0]",
        "a github webhook needs `secret:`",
    ),
    "52-plain-webhook-without-action": (
        6,
        9,
        "apps.web.webhooks[0]",
        "a plain webhook needs `action:`",
    ),
    "53-stream-without-source": (6, 9, "apps.web.websockets[0]", "missing required key 'source'"),
    "54-chat-without-room": (6, 16, "apps.web.websockets[0].path", "path needs a {room} parameter"),
    "55-command-app-with-routes": (7, 7, "apps.dashboard.routes", "runs its own command"),
    "56-run-task-expression-without-allow": (
        10,
        21,
        "apps.web.routes[0].run.task",
        "needs `allow:`",
    ),
    "57-invalid-utf8": (5, 1, "$", "not UTF-8 text"),
    "58-version-2": (1, 10, "version", "the only value is 1"),
    "59-unquoted-brace-in-flow-mapping": (6, 22, "$", "quote the value that holds it"),
    "60-control-character": (5, 22, "$", "the character U+0007 cannot appear in YAML"),
    "61-port-is-float": (5, 11, "apps.web.port", "expected a whole number, got 8080.0"),
    "62-app-with-nothing": (4, 7, "apps.web", "got null (nothing is written after the key)"),
    "63-replicas-yes": (5, 15, "apps.web.replicas", "YAML 1.1 reads yes as the boolean true)"),
    "64-health-without-slash": (5, 13, "apps.web.health", "a path must start with '/'"),
    "65-wait-bad-duration": (8, 60, "apps.web.routes[0].run.wait", "'5x' is not valid here"),
    "66-document-marker-only": (1, 1, "$", "the file is empty"),
    "67-merge-not-mapping": (5, 10, "apps.web", "`<<` merges a mapping or a list of mappings"),
    "68-bearer-not-a-name": (7, 20, "apps.web.auth.bearer", "expected a string, got 1"),
    "69-env-name-invalid": (6, 7, "apps.web.env.my-var", "an environment variable name"),
    "70-header-value-newline": (
        12,
        22,
        "apps.web.routes[0].respond.headers.X-Multi",
        "a header value must be one line of printable Latin-1 text",
    ),
    "81-input-schema-type-typo": (
        7,
        17,
        "tasks.add-one.inputs.x.type",
        "not a valid JSON Schema: 'integr' is not a type; did you mean 'integer'?",
    ),
    "82-body-schema-invalid": (
        12,
        30,
        "apps.web.routes[0].body.properties.quantity.type",
        "'nmber' is not a type; did you mean 'number'?",
    ),
    "83-query-schema-invalid": (
        10,
        43,
        "apps.web.routes[0].query.limit.minimum",
        "not a valid JSON Schema: 'ten' is not of type 'number'",
    ),
    "84-env-expression": (
        9,
        20,
        "apps.web.env.BACKEND_URL",
        "use depends_on: [{app: NAME, env: BACKEND_URL}]",
    ),
    "85-auth-apps-without-dependency": (
        7,
        42,
        "apps.backend.auth.apps[0]",
        "app 'frontend' may call 'backend' only if 'backend' is in its depends_on",
    ),
    "86-auth-apps-on-a-route": (
        11,
        45,
        "apps.backend.routes[0].auth.apps",
        "`apps:` belongs on the app's own auth",
    ),
    "87-dependency-listed-twice": (
        7,
        33,
        "apps.web.depends_on[1].app",
        "'backend' is listed twice in depends_on",
    ),
    "88-named-dependency-unknown": (
        8,
        15,
        "apps.web.depends_on[0].app",
        "there is no app named 'bakend'; did you mean 'backend'?",
    ),
    "89-allow-without-task-runner": (
        10,
        16,
        "apps.web.websockets[0].allow",
        "`allow` is for the task-runner pattern only",
    ),
    "90-rate-limit-fraction-of-a-second": (
        5,
        37,
        "apps.web.rate_limit.per",
        "whole seconds, at least 1s",
    ),
    "91-rate-limit-by-unknown": (
        9,
        49,
        "apps.web.routes[0].rate_limit.by",
        "'ip' is not valid: what is counted apart",
    ),
    "92-failed-reply-without-wait": (
        12,
        19,
        "apps.web.routes[0].run.failed",
        "set `wait:` or remove it",
    ),
    "93-named-endpoint-reserved-variable": (
        8,
        29,
        "apps.web.depends_on[0].env",
        "PATH is set by engine itself; choose another variable",
    ),
    "71-alias-bomb": (8, 6, "x-f", "YAML aliases expand this spec past 100,000 values"),
    "94-auth-tasks-without-dependency": (
        7,
        43,
        "apps.backend.auth.tasks[0]",
        "task 'nightly-report' may call 'backend' only if 'backend' is in its depends_on; "
        "add it there",
    ),
    "95-auth-tasks-unknown-task": (
        7,
        43,
        "apps.backend.auth.tasks[0]",
        "there is no task named 'nightly-reprot'; did you mean 'nightly-report'?",
    ),
    "96-auth-tasks-on-a-route": (
        11,
        46,
        "apps.backend.routes[0].auth.tasks",
        "`tasks:` belongs on the app's own auth, not on one route's",
    ),
    "97-auth-apps-lists-a-task": (
        7,
        42,
        "apps.backend.auth.apps[0]",
        "'nightly-report' is a task, not an app; list it under `tasks:` instead of `apps:`",
    ),
    "98-auth-tasks-lists-an-app": (
        7,
        54,
        "apps.backend.auth.tasks[0]",
        "'frontend' is an app, not a task; list it under `apps:` instead of `tasks:`",
    ),
}

FILES = sorted(CORPUS.glob("*.yaml"))
FORMAT = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$")
# The CLI reads the applying user's environment: keep the corpus's variable unset.
CLI_ENV_DROP = ("ENGINE_TEST_UNSET_API_BASE",)


def test_corpus_is_large_and_fully_described() -> None:
    assert len(FILES) >= 45
    assert sorted(EXPECTED) == [f.stem for f in FILES]


def _only_diagnostic(path: Path) -> Diagnostic:
    with pytest.raises(SpecError) as caught:
        check_spec(path, environ={})
    diagnostics = caught.value.diagnostics
    assert len(diagnostics) == 1, "\n".join(map(str, diagnostics))
    return diagnostics[0]


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_one_fault_one_diagnostic(path: Path) -> None:
    line, col, json_path, phrase = EXPECTED[path.stem]
    diagnostic = _only_diagnostic(path)
    assert (diagnostic.line, diagnostic.col, diagnostic.path) == (line, col, json_path)
    assert phrase in diagnostic.message
    assert diagnostic.file == str(path.resolve())
    assert "\n" not in diagnostic.message


def _engine() -> list[str]:
    # `python -m engine.cli` does not call main(); use the installed console script.
    script = shutil.which("engine")
    if script is None:
        return [sys.executable, "-c", "from engine.cli import main; main()"]
    return [script]


CLI_CASES = [
    "05-unknown-top-level-key",
    "26-cycle-three-apps",
    "36-expression-syntax",
    "39-tab-indent",
    "40-empty-file",
    "46-missing-env-var",
    "57-invalid-utf8",
]


@pytest.mark.parametrize("stem", CLI_CASES)
def test_cli_prints_one_line(stem: str, tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_DROP}
    path = CORPUS / f"{stem}.yaml"
    result = subprocess.run(
        [*_engine(), "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    match = FORMAT.match(lines[0])
    assert match, lines[0]
    line, col, json_path, phrase = EXPECTED[stem]
    assert match["file"] == str(path.resolve())
    assert (int(match["line"]), int(match["col"]), match["path"]) == (line, col, json_path)
    assert phrase in match["message"]
    assert lines[0] == str(_only_diagnostic(path))


def test_cli_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_engine(), "validate", str(tmp_path / "spec.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert FORMAT.match(lines[0]), lines[0]
