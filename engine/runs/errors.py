"""Errors of the runner that the run API turns into 404s.

EngineError (engine.errors)
├── UnknownTaskError    a run names a task that is not configured (also a KeyError)
└── UnknownRunError     no run has the given id (also a KeyError)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from engine.errors import EngineError


class UnknownTaskError(EngineError, KeyError):
    """Raised when a run names a task that is not configured."""

    def __init__(self, task: str, known: Iterable[str] = ()) -> None:
        self.task = task
        self.known = sorted(known)
        self.suggestions = difflib.get_close_matches(task, self.known, n=3)
        super().__init__(task)

    def __str__(self) -> str:
        if self.suggestions:
            hint = f"; did you mean {' or '.join(map(repr, self.suggestions))}?"
        elif self.known:
            hint = f"; the tasks are: {', '.join(self.known)}"
        else:
            hint = "; this project has no tasks"
        return f"unknown task {self.task!r}{hint}"


class UnknownRunError(EngineError, KeyError):
    """Raised when no run has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(run_id)

    def __str__(self) -> str:
        return f"unknown run {self.run_id!r}"
