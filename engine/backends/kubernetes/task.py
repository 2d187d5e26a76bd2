"""The entry of a task attempt's pod: `python -m engine.backends.kubernetes.task module:function`.

It reads the run's inputs from `ENGINE_RUN_INPUTS` (JSON), calls the handler once, and
prints the result as the last line of its output, in a form the executor recognises:

    ENGINE_RESULT {"ok": true, "outputs": ...}
    ENGINE_RESULT {"ok": false, "error": "Type: message"}

(exit status 0 or 1; `engine.backends.attempt` does the work, as for every target).
Everything else on stdout and stderr is the run's log, a failure's traceback included.
The pod's log is the channel because it has no size limit worth worrying about (a
termination message holds 4 KiB) and `engine logs` reads it anyway.
"""

from __future__ import annotations

import json
import os
import sys

from engine.backends.attempt import attempt, result_line


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
    print(result_line(payload), flush=True)
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
