"""`engine dev` as a person runs it: a real CLI process, real apps, real file edits, Ctrl-C."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import EngineProject, base_env, engine_command

pytestmark = pytest.mark.e2e

SPEC = """
version: 1
project: devloop
apps:
  hello:
    routes:
      - {method: GET, path: /, handler: "handlers:hello"}
"""
HANDLERS = """
from greeting import WORD


def hello() -> dict:
    return {"message": WORD}
"""


class Dev:
    """A running `engine dev`, its output read line by line."""

    def __init__(self, project: EngineProject) -> None:
        self.process = subprocess.Popen(
            [*engine_command(), "dev", "spec.yaml"],
            cwd=project.root,
            env=project.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        """Kill it if it still runs; close its output."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """The first line from now on that contains `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        pytest.fail(f"engine dev never printed {text!r}; it printed:\n" + "\n".join(self.seen))


@pytest.fixture
def dev(tmp_path) -> Iterator[tuple[EngineProject, Dev]]:
    project = EngineProject(tmp_path / "devloop", base_env())
    project.write({"spec.yaml": SPEC, "handlers.py": HANDLERS, "greeting.py": 'WORD = "one"\n'})
    running = Dev(project)
    try:
        yield project, running
    finally:
        running.close()
        leftovers = project.teardown()
        assert not leftovers, f"still running: {leftovers}"


def answer(url: str) -> str:
    return httpx.get(url, timeout=5, trust_env=False).json()["message"]


def test_reloads_keeps_serving_a_broken_spec_and_stops_on_ctrl_c(
    dev: tuple[EngineProject, Dev],
) -> None:
    project, running = dev
    running.expect("watching")
    url = project.status()["apps"][0]["url"]
    assert answer(url) == "one"
    running.expect("hello | ")  # the app's own log lines, prefixed with its name

    # A module the handler imports changes: the app is replaced, at the same URL.
    (project.root / "greeting.py").write_text('WORD = "two"\n')
    running.expect("changed: greeting.py")
    EngineProject.wait_for(lambda: answer(url) == "two", timeout=60)
    assert project.status()["apps"][0]["url"] == url
    line = running.expect('"GET /" 200')
    assert line.startswith("hello | ") and "\x1b[" not in line  # piped: no colour

    # Mid-edit, the spec does not parse: its error is printed, the app keeps serving.
    (project.root / "spec.yaml").write_text(SPEC + "  broken: [\n")
    running.expect("spec.yaml:")
    running.expect("the last good version keeps running")
    assert answer(url) == "two"

    # Ctrl-C: everything engine dev started stops, and it exits 130.
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=60) == 130
    running.expect("stopping everything")
    assert not project.alive(), "\n".join(running.seen)
    assert project.control_plane() is None
