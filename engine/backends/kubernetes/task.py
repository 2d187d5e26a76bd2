"""The entry of a task attempt's pod: `python -m engine.backends.kubernetes.task module:function`.

It reads the run's inputs from `ENGINE_RUN_INPUTS` (JSON), calls the handler once, and
prints the result as the last line of its output, in a form the executor recognises:

    ENGINE_RESULT {"ok": true, "outputs": ...}
    ENGINE_RESULT {"ok": false, "error": "Type: message"}

(exit status 0 or 1). Everything else on stdout and stderr is the run's log, a failure's
traceback included. The pod's log is the channel because it has no size limit worth
worrying about (a termination message holds 4 KiB) and `engine logs` reads it anyway.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from typing import Any

MARKER = "ENGINE_RESULT "


def describe(exc: BaseException) -> str:
    """An exception as `Type: message` (just the type when there is no message)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _handler(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def attempt(ref: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Import and call the handler with `inputs`; the result line's payload."""
    try:
        result = _handler(ref)(**inputs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except (Exception, SystemExit) as exc:
        traceback.print_exc()
        return {"ok": False, "error": describe(exc)}
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": f"outputs are not JSON-serialisable: {exc}"}
    return {"ok": True, "outputs": result}


async def _await(awaitable: Any) -> Any:
    return await awaitable


def result_of(lines: list[str]) -> dict[str, Any] | None:
    """The payload of the last result line among a pod's log lines, if there is one."""
    for line in reversed(lines):
        if line.startswith(MARKER):
            try:
                found = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one attempt; print its result line last."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.backends.kubernetes.task module:function", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    inputs = json.loads(os.environ.get("ENGINE_RUN_INPUTS", "{}"))
    payload = attempt(args[0], inputs)
    sys.stderr.flush()
    print(MARKER + json.dumps(payload, sort_keys=True), flush=True)
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
