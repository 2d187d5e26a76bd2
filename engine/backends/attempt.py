"""What every target's task process does with one attempt: import the handler, call it,
and say how it ended. Shared by the local worker, the Kubernetes Job's entry and the Ray
job's entry, so a handler behaves the same wherever it runs.

A process that reports through its log (a pod, a Ray job) prints the result last:

    ENGINE_RESULT {"ok": true, "outputs": ...}
    ENGINE_RESULT {"ok": false, "error": "Type: message"}
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import traceback
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from engine.runtime.models import task_arguments

RESULT_MARKER = "ENGINE_RESULT "
"""Starts the line that carries an attempt's result in a log."""


def load_handler(spec: str) -> Callable[..., Any]:
    """Import `module:function` and return the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"handler {spec!r} is not of the form module:function")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"handler {spec!r} is not callable")
    return target


def describe(exc: BaseException) -> str:
    """An exception as `Type: message` (just the type when there is no message)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def call(handler: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call the handler with inputs as keyword arguments (an input whose parameter is
    annotated with a Pydantic model validated into it); await it if it is async."""
    result = handler(**task_arguments(handler, inputs))
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def outcome(run: Callable[[], Any]) -> dict[str, Any]:
    """`{"ok": true, "outputs"}` from `run()`, or `{"ok": false, "error"}` if it raised (its
    traceback printed, for the run's log) or returned what JSON cannot hold. Pydantic
    models among the outputs become their JSON form, as FastAPI answers them."""
    try:
        outputs = run()
    except (Exception, SystemExit) as exc:
        traceback.print_exc()
        return {"ok": False, "error": describe(exc)}
    try:
        outputs = json.loads(json.dumps(outputs, allow_nan=False, default=_model_json))
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": f"outputs are not JSON-serialisable: {exc}"}
    return {"ok": True, "outputs": outputs}


def _model_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def attempt(spec: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Import handler `spec` and call it once with `inputs`: the `outcome()`."""
    return outcome(lambda: call(load_handler(spec), inputs))


def result_line(payload: dict[str, Any]) -> str:
    """The log line that carries an attempt's result."""
    return RESULT_MARKER + json.dumps(payload, sort_keys=True, allow_nan=False)


def result_of(lines: list[str]) -> dict[str, Any] | None:
    """The payload of the last result line among log lines, if there is one."""
    for line in reversed(lines):
        if line.startswith(RESULT_MARKER):
            try:
                found = json.loads(line[len(RESULT_MARKER) :])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None
