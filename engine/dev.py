"""The development loop behind `engine dev`: apply, watch, re-apply, and show every app's log.

    loop = DevLoop(Path("spec.yaml"), Output.for_stream(sys.stdout))
    loop.run()        # until Ctrl-C; then everything it started is destroyed

What is watched is what the apps and tasks run (as their content hashes count it): the
spec, the handler modules and the project modules they import, `include:` files and static
folders, recomputed after each change. Changes are noticed with `watchfiles` (inotify) and
applied through `Project.apply`, which restarts only what changed, each app keeping its
URL. A spec that stops validating prints its errors; the last good version keeps running.
Each app's log is followed through the control plane and printed with the app's name in
front, like `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import http.client
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.errors import EngineError, SpecError
from engine.events import ApplyEvent, DoneEvent, ErrorEvent, StepEvent, WarningsEvent
from engine.project import Project

IGNORED_DIRS = frozenset({".engine", "__pycache__", ".git", ".venv", "node_modules"})
_COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)  # ANSI foreground codes
_STEP_MS = 50  # a burst of writes (an editor's save) counts as one change after 50 ms quiet
_DEBOUNCE_MS = 400


@dataclass(frozen=True)
class WatchSet:
    """The files that matter to a spec: exact files, folders (static) and include globs."""

    root: Path
    files: frozenset[Path]
    folders: tuple[Path, ...] = ()
    globs: tuple[str, ...] = ()

    def matches(self, path: Path) -> bool:
        """Whether a change of `path` may change what runs."""
        if path in self.files or any(path.is_relative_to(f) for f in self.folders):
            return True
        if not path.is_relative_to(self.root):
            return False
        relative = path.relative_to(self.root).as_posix()
        return any(fnmatch.fnmatch(relative, pattern) for pattern in self.globs)


def watch_set(spec_path: Path, previous: WatchSet | None = None) -> WatchSet:
    """What `spec_path` runs; if it does not load, `previous` (and the spec) still count."""
    from engine.compiler import compile_spec
    from engine.load import load_spec

    spec_file = spec_path.resolve()
    root = spec_file.parent
    try:
        spec = load_spec(spec_file)
        build = compile_spec(spec)
    except EngineError:
        if previous is None:
            return WatchSet(root, frozenset({spec_file}))
        return WatchSet(root, previous.files | {spec_file}, previous.folders, previous.globs)
    artifacts = [*build.apps.values(), *build.tasks.values()]
    files = {spec_file} | {root / f for a in artifacts for f in a.files}
    folders = tuple(root / a.static.dir for a in spec.apps.values() if a.static is not None)
    units: list[Any] = [*spec.apps.values(), *spec.tasks.values()]
    globs = tuple(pattern for unit in units for pattern in unit.include)
    return WatchSet(root, frozenset(files), folders, globs)


class Output:
    """Where the loop prints: its own lines, and app log lines with a (coloured) prefix."""

    def __init__(self, stream: IO[str], colour: bool) -> None:
        self.stream = stream
        self.colour = colour
        self.width = 0
        self._lock = threading.Lock()
        self._colours: dict[str, int] = {}

    @classmethod
    def for_stream(cls, stream: IO[str]) -> Output:
        """Coloured on a terminal unless NO_COLOR is set (https://no-color.org)."""
        return cls(stream, stream.isatty() and not os.environ.get("NO_COLOR"))

    def say(self, text: str) -> None:
        """One of engine dev's own lines."""
        self._write(text if not self.colour else f"\x1b[1m{text}\x1b[0m")

    def app_line(self, app: str, line: str) -> None:
        """One line of `app`'s log, prefixed `app | ` (padded to the longest name)."""
        prefix = f"{app.ljust(self.width)} | "
        if self.colour:
            code = self._colours.setdefault(app, _COLOURS[len(self._colours) % len(_COLOURS)])
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        self._write(prefix + line.rstrip("\n"))

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()


@dataclass
class DevLoop:
    """Apply `spec`, then re-apply it on every change that matters, until interrupted."""

    spec: Path
    out: Output
    target: str | None = None
    health_timeout: float = 30.0
    project: Project = field(init=False)
    watched: WatchSet = field(init=False)
    _following: set[str] = field(default_factory=set, init=False)
    _seen: dict[Path, tuple[int, int] | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not self.spec.is_file():
            raise EngineError(f"{self.spec}: no such file; pass the spec (default spec.yaml)")
        self.project = Project.of_spec(self.spec, self.target)
        self.watched = watch_set(self.spec)

    def run(self, stop: threading.Event | None = None) -> None:
        """Apply, then watch until `stop` is set or Ctrl-C (KeyboardInterrupt propagates)."""
        from watchfiles import watch

        self.apply()
        self.out.say(f"watching {self.project.root} for changes (Ctrl-C stops everything)")
        for changes in watch(
            self.project.root,
            watch_filter=self._relevant,
            step=_STEP_MS,
            debounce=_DEBOUNCE_MS,
            stop_event=stop,
            raise_interrupt=True,
        ):
            changed = self._really_changed({Path(p) for _, p in changes})
            if not changed:
                continue
            names = ", ".join(str(p.relative_to(self.project.root)) for p in changed)
            self.out.say(f"changed: {names}; applying")
            self.apply()

    def _really_changed(self, paths: set[Path]) -> list[Path]:
        """The paths whose size or mtime differ from when they last caused an apply (an
        editor's save may come as several events: one apply is enough)."""
        changed = []
        for path in sorted(paths):
            try:
                stat = path.stat()
                seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                seen = None  # deleted
            if self._seen.get(path, ()) != seen:
                self._seen[path] = seen
                changed.append(path)
        return changed

    def apply(self) -> bool:
        """Apply the spec once; print what changed; follow new apps' logs. True if it worked."""
        try:
            ok = self._show(self.project.apply(self.spec, health_timeout=self.health_timeout))
        except SpecError as exc:
            self._refused([str(d) for d in exc.diagnostics])
            ok = False
        except EngineError as exc:  # e.g. another apply holds the lock: try again on a save
            self.out.say(f"error: {exc}")
            ok = False
        finally:
            self.watched = watch_set(self.spec, self.watched)
        if self.project.active:
            self._follow(a.name for a in self.project.status().apps)
        return ok

    def stop(self) -> None:
        """Stop everything the loop started (destroy)."""
        self.project.destroy()

    def _relevant(self, change: Any, path: str) -> bool:
        resolved = Path(path)
        if IGNORED_DIRS.intersection(resolved.parts):
            return False
        return self.watched.matches(resolved)

    def _show(self, events: Iterable[ApplyEvent]) -> bool:
        ok = False
        for event in events:
            if isinstance(event, ErrorEvent):
                self._refused(list(event.errors))
            elif isinstance(event, WarningsEvent):
                for line in event.warnings:
                    self.out.say(f"{line} (warning)")
            elif isinstance(event, StepEvent) and event.action != "unchanged":
                where = f"  {event.url}" if event.url else ""
                self.out.say(f"{event.kind} {event.name}: {event.status}{where}")
                if event.error:
                    self.out.say("  " + event.error.replace("\n", "\n  "))
            elif isinstance(event, DoneEvent):
                ok = event.ok
                if not ok:
                    self.out.say("apply failed: the last good version of each app keeps running")
        return ok

    def _refused(self, errors: list[str]) -> None:
        for line in errors:
            self.out.say(line)
        self.out.say("the spec does not validate: the last good version keeps running")

    def _follow(self, apps: Iterable[str]) -> None:
        """Print each app's new log lines from now on (one thread per app, for its stream)."""
        new = [a for a in apps if a not in self._following]
        self.out.width = max([self.out.width, *map(len, new)])
        for app in new:
            self._following.add(app)
            thread = threading.Thread(target=self._tail, args=(app,), daemon=True)
            thread.start()

    def _tail(self, app: str) -> None:
        try:
            for line in self.project.logs(app, tail=0, follow=True):
                self.out.app_line(app, line)
        except (EngineError, OSError, http.client.HTTPException):
            pass  # the control plane went away (destroy): nothing more to print
        finally:
            self._following.discard(app)


def run_dev(
    spec: Path,
    *,
    target: str | None = None,
    health_timeout: float = 30.0,
    stream: IO[str] = sys.stdout,
    on_exit: Callable[[int], None] = sys.exit,
) -> None:
    """`engine dev`: the loop until Ctrl-C, then destroy and exit 130 (128 + SIGINT)."""
    out = Output.for_stream(stream)
    loop = DevLoop(spec, out, target, health_timeout)
    try:
        loop.run()
    except KeyboardInterrupt:
        out.say("stopping everything engine dev started")
        loop.stop()
        on_exit(130)
