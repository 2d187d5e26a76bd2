"""One task attempt as a Ray job: `python -m engine.backends.ray.job_entry module:function`.

Runs on the cluster in the task's working_dir. Loads the task's secrets, calls the
handler with the inputs in `ENGINE_INPUTS` (JSON) as keyword arguments (awaiting it if it
is async), and prints the result as the job's last line:

    ENGINE_RESULT {"ok": true, "outputs": ...}   | ENGINE_RESULT {"ok": false, "error": "..."}

A failure's traceback goes to stderr (the job's log) before that line; the exit code is 0
on success, 1 on failure.
"""

from __future__ import annotations

import json
import os
import sys

from engine.backends.attempt import attempt, result_line
from engine.backends.ray.secretfile import load_secrets


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.backends.ray.job_entry module:function", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())  # the working_dir: handler modules import from there
    load_secrets()
    inputs = json.loads(os.environ.get("ENGINE_INPUTS", "{}"))
    if int(os.environ.get("ENGINE_ATTEMPT", "1")) > 1:
        print(f"--- attempt {os.environ['ENGINE_ATTEMPT']} ---", flush=True)
    result = attempt(args[0], inputs)
    sys.stderr.flush()
    print(result_line(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
