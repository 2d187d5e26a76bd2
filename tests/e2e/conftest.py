"""Fixtures for the end-to-end tests: real projects, the real CLI, real processes and ports.

`engine_project` (and its module-scoped twin `shared_engine_project`) writes a project
folder and returns an `EngineProject` that runs `python -m engine.cli ...` in it as a
subprocess, with an environment the test controls. At teardown the project is destroyed
through the CLI, and then every process it is known to have had (the control plane from
`.engine/control-plane.json`, the apps' pids recorded in `.engine/state.db`, and every pid
a test saw) is checked: any that is still alive is killed by its pid and the test errors.
Nothing is ever killed by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backends.local import procs

CLI_TIMEOUT = 120.0
# Variables of the runner's own environment that must not leak into what the engine sees.
_DROPPED_PREFIXES = ("ENGINE_", "E2E_")


@dataclass
class Result:
    """One finished CLI command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"engine {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class EngineProject:
    """A project folder, and the real `engine` CLI run in it."""

    root: Path
    env: dict[str, str]
    results: list[Result] = field(default_factory=list)
    seen_pids: dict[int, int] = field(default_factory=dict)  # pid -> start time

    @property
    def engine_dir(self) -> Path:
        return self.root / ".engine"

    def write(self, files: Mapping[str, str]) -> None:
        """Write (or overwrite) files of the project; text is dedented."""
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))

    def append(self, name: str, text: str) -> None:
        with (self.root / name).open("a") as f:
            f.write(textwrap.dedent(text))

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `engine ARGS...` in the project folder without waiting for it."""
        return subprocess.Popen(
            [*engine_command(), *args],
            cwd=self.root,
            env=dict(self.env if env is None else env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, process: subprocess.Popen[str], args: tuple[str, ...]) -> Result:
        """Wait for a process started by `popen` and record its result."""
        try:
            stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            pytest.fail(f"engine {' '.join(args)} took over {CLI_TIMEOUT:g} s:\n{stdout}{stderr}")
        result = Result(args, process.returncode, stdout, stderr)
        self.results.append(result)
        return result

    def run(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """Run `engine ARGS...` in the project folder and return its result."""
        return self.finish(self.popen(*args, env=env), args)

    def ok(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """Run `engine ARGS...` and fail the test unless it exits 0."""
        result = self.run(*args, env=env)
        assert result.returncode == 0, str(result)
        return result

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
        """`wait_for`, for test modules (they cannot import conftest: tests/ has several)."""
        return wait_for(predicate, timeout, interval)

    # what is running

    def status(self) -> dict[str, Any]:
        """`engine status --json`, with every pid seen remembered for the teardown check."""
        status = self.ok("status", "--json").json()
        self._remember(status)
        return status

    def api_status(self) -> dict[str, Any]:
        """The control plane's status over HTTP (cheap, for polling); no control plane start."""
        info = self.control_plane()
        assert info is not None, "no control plane is recorded"
        response = httpx.get(
            f"{info['url']}/api/v1/status",
            headers={"Authorization": f"Bearer {info['token']}"},
            timeout=10,
            trust_env=False,
        )
        response.raise_for_status()
        status = response.json()
        self._remember(status)
        return status

    def _remember(self, status: Mapping[str, Any]) -> None:
        pids = [a["pid"] for a in status["apps"]] + [status["control_plane"]["pid"]]
        for pid in pids:
            start = procs.process_start_time(pid) if pid else None
            if start is not None:
                self.seen_pids.setdefault(pid, start)

    def control_plane(self) -> dict[str, Any] | None:
        """The contents of `.engine/control-plane.json`, or None."""
        try:
            return json.loads((self.engine_dir / "control-plane.json").read_text())
        except (OSError, ValueError):
            return None

    def recorded_apps(self) -> dict[str, dict[str, Any]]:
        """The apps table of `.engine/state.db`, read directly (name -> row)."""
        path = self.engine_dir / "state.db"
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            db.row_factory = sqlite3.Row
            return {r["name"]: dict(r) for r in db.execute("SELECT * FROM apps")}
        finally:
            db.close()

    def known_processes(self) -> dict[int, int]:
        """Every process this project is known to have had: pid -> start time."""
        known = dict(self.seen_pids)
        info = self.control_plane()
        if info:
            known.setdefault(int(info["pid"]), int(info["start_time"]))
        with contextlib.suppress(sqlite3.Error):
            for row in self.recorded_apps().values():
                if row["pid"] and row["start_time"]:
                    known.setdefault(int(row["pid"]), int(row["start_time"]))
        return known

    def alive(self) -> dict[int, int]:
        """The known processes that still run (same pid and start time)."""
        return {pid: st for pid, st in self.known_processes().items() if procs.is_ours(pid, st)}

    def teardown(self) -> list[int]:
        """Destroy the project, then kill (by pid) whatever it left; return the leftovers."""
        if self.engine_dir.is_dir():
            self.run("destroy", "-C", str(self.root))
        leftovers = self.alive()
        for pid, start in leftovers.items():
            if procs.is_ours(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return sorted(leftovers)


def engine_command() -> list[str]:
    """How to run the real CLI: `python -m engine.cli` (cli.py ends with a __main__ guard)."""
    return [sys.executable, "-m", "engine.cli"]


def base_env(**extra: str) -> dict[str, str]:
    """The runner's environment without engine's or these tests' own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env.update(extra)
    return env


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"not true within {timeout:g} s; last: {last!r}")


ProjectFactory = Callable[..., EngineProject]


def _factory(make_dir: Callable[[], Path]) -> Iterator[ProjectFactory]:
    projects: list[EngineProject] = []

    def make(files: Mapping[str, str], env: Mapping[str, str] | None = None) -> EngineProject:
        project = EngineProject(make_dir(), base_env(**(env or {})))
        project.write(files)
        projects.append(project)
        return project

    yield make
    problems = []
    for project in projects:
        leftovers = project.teardown()
        if leftovers:
            problems.append(f"{project.root}: still running after destroy: pids {leftovers}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def engine_project(tmp_path: Path) -> Iterator[ProjectFactory]:
    """Factory: `engine_project(files, env)` writes a project into tmp_path; destroyed after."""
    counter = iter(range(1000))
    yield from _factory(lambda: _mkdir(tmp_path / f"project{next(counter)}"))


@pytest.fixture(scope="module")
def shared_engine_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectFactory]:
    """The same factory, for a project that several tests of a module share."""
    yield from _factory(lambda: tmp_path_factory.mktemp("project"))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
