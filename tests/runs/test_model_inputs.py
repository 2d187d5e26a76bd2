"""A task parameter annotated with a Pydantic model gets its input validated into the
model, in a real local worker process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from engine.backends.base import TaskUnit
from tests.runs.conftest import TASKS, Stores, finished, running

MODEL_TASK = """

from pydantic import BaseModel


class Commit(BaseModel):
    sha: str
    branch: str = "main"


def deploy(commit: Commit) -> dict:
    return {"type": type(commit).__name__, "sha": commit.sha, "branch": commit.branch}
"""


def test_a_model_input_arrives_as_the_model_and_a_bad_one_fails_the_run(
    tmp_path: Path, project: Path, task: Callable[..., TaskUnit]
) -> None:
    (project / "tasks.py").write_text(TASKS + MODEL_TASK)
    deploy = task("deploy", inputs={"commit": {"type": "object"}})

    async def scenario() -> None:
        async with running(Stores(tmp_path), [deploy]) as runner:
            good = await runner.submit("deploy", {"commit": {"sha": "abc"}})
            run = await finished(runner, good.run)
            assert (run.status, run.outputs) == (
                "succeeded",
                {"type": "Commit", "sha": "abc", "branch": "main"},
            )
            bad = await finished(runner, (await runner.submit("deploy", {"commit": {}})).run)
            assert bad.status == "failed"
            assert "commit.sha: Field required" in (bad.error or "")

    asyncio.run(scenario())
