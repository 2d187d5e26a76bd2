"""Exceptions raised by engine on purpose.

    EngineError                 root of everything engine raises on purpose
    ├── SpecError               a spec or blueprint is invalid; carries positioned Diagnostics
    ├── UsageError              a command was called wrongly
    ├── ApplyError              apply could not converge
    ├── ControlPlaneError       the control plane is unreachable or answered an error
    ├── StateError              the project's state under .engine/ cannot be read
    ├── LockHeldError           another command holds the project's lock (engine.state)
    └── RunInputError           a run's inputs fail the task's input schema

The CLI turns each into a message and an exit code in one place; none reaches a user as a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One positioned problem in a spec: prints as `file:line:col: path: message`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """The diagnostic as JSON-ready data (for `engine validate --json`)."""
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
        }


class EngineError(Exception):
    """Root of every error engine raises on purpose."""


class SpecError(EngineError):
    """Raised when a spec or blueprint is invalid; `diagnostics` lists every problem, sorted."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UsageError(EngineError):
    """Raised when a command is called wrongly (a bad option value, no project found)."""


class ApplyError(EngineError):
    """Raised when apply cannot converge, e.g. an app fails its health check."""


class ControlPlaneError(EngineError):
    """Raised when the control plane is unreachable or answers with an error."""


class StateError(EngineError):
    """Raised when the project's state database cannot be opened or read."""


class RunInputError(EngineError):
    """Raised when a run's inputs fail the task's input schema."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
