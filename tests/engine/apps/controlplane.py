"""A stand-in control plane for adopt tests: start one app, record it in the state, idle.

python controlplane.py ENGINE_DIR SPEC_JSON   (SPEC_JSON: name, argv, cwd, hash, env)
"""

import asyncio
import json
import sys
from pathlib import Path

from engine.backends.local.supervisor import ProcessSpec, Supervisor
from engine.state import State


async def main(dir: Path, spec: dict) -> None:
    spec["cwd"] = Path(spec["cwd"])
    supervisor = Supervisor(State(dir), dir / "logs")
    await supervisor.start(ProcessSpec(**spec))
    print("ready", flush=True)
    await asyncio.sleep(3600)


asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2])))
