import json
import subprocess
import sys

import pytest

from engine.runtime import ConfigError, endpoint, env_name, secret


def test_env_name_upper_cases_and_turns_dashes_into_underscores() -> None:
    assert env_name("github-secret") == "GITHUB_SECRET"


def test_endpoint_reads_the_injected_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADD_ONE_APP_ENDPOINT", "http://127.0.0.1:8001/")
    assert endpoint("add-one-app") == "http://127.0.0.1:8001"


def test_endpoint_missing_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKEND_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="BACKEND_ENDPOINT is not set"):
        endpoint("backend")


def test_secret_from_variable_or_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("API_TOKEN", "abc")
    assert secret("api-token") == "abc"
    monkeypatch.delenv("API_TOKEN")
    (tmp_path / "token").write_text("from-file\n")
    monkeypatch.setenv("API_TOKEN_FILE", str(tmp_path / "token"))
    assert secret("API_TOKEN") == "from-file"


def test_secret_missing_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    monkeypatch.delenv("NOPE_FILE", raising=False)
    with pytest.raises(ConfigError, match=r"NOPE is not set \(neither NOPE nor NOPE_FILE\)"):
        secret("NOPE")


def test_import_engine_runtime_stays_light() -> None:
    code = "import sys, engine.runtime; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for heavy in ("fastapi", "starlette", "httpx", "jinja2", "jsonschema"):
        assert f"'{heavy}'" not in out.stdout


def test_public_api_of_the_app_module() -> None:
    from engine.runtime import app

    assert sorted(app.__all__) == [
        "ApiKey",
        "Bearer",
        "Endpoint",
        "RateLimit",
        "Respond",
        "Run",
        "RunFinished",
        "RunStarted",
        "api_key",
        "bearer",
        "create_app",
        "handler",
        "proxy",
        "rate_limit",
        "respond",
        "responses",
        "run",
        "static_files",
        "webhook",
        "websocket",
    ]


def test_secret_finds_a_renamed_grant_by_the_secrets_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_SECRETS", json.dumps({"db-password": "PGPASSWORD"}))
    monkeypatch.setenv("PGPASSWORD", "pw")
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    assert secret("db-password") == "pw"
    assert secret("PGPASSWORD") == "pw"


def test_a_missing_grant_is_named_in_the_specs_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_SECRETS", json.dumps({"db-password": "PGPASSWORD"}))
    monkeypatch.setenv("ENGINE_APP", "web")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSWORD_FILE", raising=False)
    with pytest.raises(ConfigError, match=r"secret PGPASSWORD is not set \(neither PGPASSWORD "):
        secret("db-password")  # granted as PGPASSWORD: that is the variable to look at
    with pytest.raises(ConfigError) as caught:
        secret("api-token")
    assert str(caught.value) == (
        "secret 'api-token' is not granted to app 'web': add it under its `secrets:` in the "
        "spec; it is granted db-password (as PGPASSWORD)"
    )
