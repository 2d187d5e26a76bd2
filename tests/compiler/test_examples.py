"""Every example's generated modules: byte for byte against golden files, and each one's
OpenAPI document valid (openapi-spec-validator), with the security schemes, answers and
bodies its spec declares.

After an intended change to the compiler, rewrite the golden files with

    ENGINE_UPDATE_GOLDEN=1 pytest tests/compiler/test_examples.py

and review the diff before committing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from engine.compiler import compile_spec, write_build
from engine.load import load_spec
from tests.compiler.compile_helpers import GOLDEN, base_env, run_python

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/spec.yaml"))
BUILDS = {
    name: compile_spec(load_spec(EXAMPLES_DIR / name / "spec.yaml", environ={}))
    for name in EXAMPLES
}
MODULES = [
    (example, app)
    for example, build in BUILDS.items()
    for app, artifact in build.apps.items()
    if artifact.source is not None
]
IDS = [f"{example}/{app}" for example, app in MODULES]
ENV = {
    "WEBHOOK_API_KEY": "runner-key",
    "GITHUB_SECRET": "gh-secret",
    "BILLING_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
    "CATALOG_TOKEN": "catalog-token",
    "CATALOG_URL": "http://127.0.0.1:9",
    "ENGINE_API_URL": "http://127.0.0.1:9/api/v1/runs",
    "ENGINE_API_TOKEN": "run-token",
}


@pytest.mark.parametrize(("example", "app"), MODULES, ids=IDS)
def test_module_matches_golden_file(example: str, app: str) -> None:
    golden = GOLDEN / "examples" / example / f"{app}.py.txt"
    source = BUILDS[example].apps[app].source
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(source, encoding="utf-8")
    assert source == golden.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each example's modules imported in one fresh process: `example/app` -> OpenAPI."""
    out = tmp_path_factory.mktemp("examples")
    for example, build in BUILDS.items():
        write_build(build, out / example)
    endpoints = {app: "http://127.0.0.1:9" for _, app in MODULES}
    code = f"""
        import importlib.util, json, os, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        documents = {{}}
        for example, app in {MODULES!r}:
            folder = {str(EXAMPLES_DIR)!r} + "/" + example
            os.chdir(folder)
            sys.path.insert(0, folder)
            for name in ("tasks", "handlers", "api", "backend", "frontend", "feeds", "sockets",
                         "catalog", "storefront"):
                sys.modules.pop(name, None)
            file = {str(out)!r} + f"/{{example}}/{{app}}/_engine_app.py"
            spec = importlib.util.spec_from_file_location(f"{{example}}_{{app}}", file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            documents[f"{{example}}/{{app}}"] = module.app.openapi()
            sys.path.remove(folder)
        print(json.dumps(documents))
    """
    env = base_env(**ENV, ENGINE_ENDPOINTS=__import__("json").dumps(endpoints))
    return run_python(code, cwd=EXAMPLES_DIR, env=env)


@pytest.mark.parametrize(("example", "app"), MODULES, ids=IDS)
def test_openapi_document_is_valid(documents: dict[str, Any], example: str, app: str) -> None:
    validate(documents[f"{example}/{app}"])


def test_run_routes_document_bearer_auth_202_and_bodies(documents: dict[str, Any]) -> None:
    document = documents["webhook-runner/runner"]
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    start = document["paths"]["/run-task/{name}"]["post"]
    assert start["security"] == [{"HTTPBearer": []}]
    assert sorted(start["responses"]) == ["202", "401", "403", "404", "415", "422"]
    started = start["responses"]["202"]["content"]["application/json"]["schema"]
    assert started == {"$ref": "#/components/schemas/RunStarted"}
    order = document["paths"]["/orders"]["post"]
    body = order["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert model["required"] == ["item", "quantity"]
    assert model["additionalProperties"] is False
    assert model["properties"]["quantity"] == {"type": "integer", "minimum": 1, "title": "Quantity"}
    root = document["paths"]["/"]["get"]
    assert "security" not in root and sorted(root["responses"]) == ["200"]


def test_api_key_scheme_and_webhook_operations(documents: dict[str, Any]) -> None:
    hooks = documents["github-webhook/receiver"]["paths"]["/github-webhook"]["post"]
    assert sorted(hooks["responses"]) == ["200", "202", "400", "401", "413", "415"]
    assert "push" in hooks["description"] and "${{" not in str(hooks)
    for document in documents.values():
        assert "${{" not in str({k: v for k, v in document.items() if k != "components"})


def test_modules_are_ruff_formatted_within_the_line_limit(tmp_path: Path) -> None:
    for example, build in BUILDS.items():
        write_build(build, tmp_path / example)
    command = [sys.executable, "-m", "ruff", "format", "--line-length", "100", "--diff"]
    done = subprocess.run([*command, "--no-cache", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    long = [
        f"{file}:{n}"
        for file in tmp_path.rglob("*.py")
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 100
    ]
    assert long == []


def test_a_handler_s_own_body_model_is_the_documented_body(documents: dict[str, Any]) -> None:
    document = documents["gateway/catalog"]
    order = document["paths"]["/orders"]["post"]
    body = order["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Order"}
    assert document["components"]["schemas"]["Order"]["required"] == ["item"]
    assert order["description"] == "Price an order (the body arrives validated, as an Order)."
