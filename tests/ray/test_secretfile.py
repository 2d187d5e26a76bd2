"""Secrets reach replicas and jobs through 0600 files: written by the control plane."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.backends.ray.config import Cluster, environment
from engine.backends.ray.secretfile import load_secrets, remove_secrets, write_secrets
from engine.runtime import ConfigError, secret
from tests.ray.conftest import PROJECT, load, ray_target


def test_secrets_are_written_0600_and_loaded_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load(PROJECT / "spec.yaml")
    unit = loaded.units.tasks["hello"]
    files = write_secrets(tmp_path, unit, {"ENGINE_API_TOKEN": "t0ken"})
    assert stat.S_IMODE(files.values.stat().st_mode) == 0o600
    cluster = Cluster.of(ray_target(), "raytest", tmp_path)
    env = environment(cluster, loaded.context, unit, {})
    assert env["ENGINE_SECRETS_FILE"] == str(files.values)
    assert "s3cret-value-of-note" not in str(env)
    monkeypatch.setenv("ENGINE_SECRETS_FILE", env["ENGINE_SECRETS_FILE"])
    monkeypatch.delenv("NOTE", raising=False)
    monkeypatch.delenv("ENGINE_API_TOKEN", raising=False)
    load_secrets()
    assert (secret("note"), os.environ["ENGINE_API_TOKEN"]) == ("s3cret-value-of-note", "t0ken")
    remove_secrets(tmp_path, "task", "hello")
    assert list(tmp_path.iterdir()) == []


def test_a_node_that_cannot_read_the_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_SECRETS_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="cannot be read on this node"):
        load_secrets()
