from pathlib import Path

import pytest

from engine.runtime import ConfigError
from engine.runtime.app import Respond
from tests.runtime import declare as rt
from tests.runtime.conftest import TestClient


def test_static_folder_is_served_after_the_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<h1>hi</h1>")
    monkeypatch.chdir(tmp_path)
    app = rt.create_app(project="shop", name="site")
    rt.add_static(app, path="/", directory="web")
    rt.add_respond_route(app, method="GET", path="/api", respond=Respond(200, {"ok": True}))
    with TestClient(app) as client:
        assert client.get("/").text == "<h1>hi</h1>"
        assert client.get("/api").json() == {"ok": True}
        assert client.get("/health").json() == {"status": "healthy"}
        assert client.get("/missing.css").status_code == 404


def test_missing_static_folder_stops_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = rt.create_app(project="shop", name="site")
    with pytest.raises(ConfigError, match="static folder 'web' does not exist"):
        rt.add_static(app, path="/", directory="web")
