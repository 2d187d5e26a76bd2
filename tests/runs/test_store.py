from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.runs.store import RunStatus, RunStore


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / ".engine" / "runs.db")


def test_create_commits_a_queued_run_visible_to_another_connection(store: RunStore) -> None:
    run = store.create("add", {"x": 1}, max_attempts=3, logs_dir=Path("/logs"))

    row = sqlite3.connect(store.path).execute(
        "SELECT task, status, inputs, attempts, max_attempts FROM runs WHERE id = ?", (run.id,)
    )
    assert row.fetchone() == ("add", "queued", '{"x": 1}', 0, 3)
    assert run.log_path == f"/logs/{run.id}.log"
    assert store.get(run.id) == run


def test_database_is_in_wal_mode(store: RunStore) -> None:
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_ids_are_short_url_safe_and_unique(store: RunStore) -> None:
    runs = store.create_many([("add", {}, 1)] * 500)

    ids = {run.id for run in runs}
    assert len(ids) == 500
    assert all(len(i) == 12 and i.replace("-", "").replace("_", "").isalnum() for i in ids)


def test_list_is_newest_first_and_filters(store: RunStore) -> None:
    a = store.create("a", {})
    b = store.create("b", {})
    c = store.create("a", {})
    store.start_attempt(c.id)

    assert [r.id for r in store.list()] == [c.id, b.id, a.id]
    assert [r.id for r in store.list(task="a")] == [c.id, a.id]
    assert [r.id for r in store.list(status=RunStatus.QUEUED)] == [b.id, a.id]
    assert [r.id for r in store.list(task="a", status=RunStatus.RUNNING)] == [c.id]
    assert [r.id for r in store.list(limit=1)] == [c.id]


def test_transitions(store: RunStore) -> None:
    run = store.create("add", {"x": 1}, max_attempts=2)

    started = store.start_attempt(run.id)
    assert (started.status, started.attempts, started.finished_at) == ("running", 1, None)
    requeued = store.requeue(run.id, "ValueError: boom")
    assert (requeued.status, requeued.error) == ("queued", "ValueError: boom")
    again = store.start_attempt(run.id)
    assert (again.status, again.attempts, again.error) == ("running", 2, None)
    done = store.finish(run.id, RunStatus.SUCCEEDED, outputs={"sum": 2})
    assert (done.status, done.outputs, done.finished) == ("succeeded", {"sum": 2}, True)
    assert done.finished_at is not None and done.finished_at >= done.started_at


def test_finish_refuses_a_state_that_is_not_final(store: RunStore) -> None:
    run = store.create("add", {})
    with pytest.raises(ValueError, match="running is not a final state"):
        store.finish(run.id, RunStatus.RUNNING)


def test_unfinished_lists_queued_and_running_oldest_first(store: RunStore) -> None:
    a, b, c = (store.create("t", {}) for _ in range(3))
    store.start_attempt(b.id)
    store.finish(c.id, RunStatus.CANCELLED)

    assert [(r.id, r.status) for r in store.unfinished()] == [(a.id, "queued"), (b.id, "running")]


def test_runs_survive_reopening(store: RunStore) -> None:
    run = store.create("add", {"x": 1})
    store.close()

    assert RunStore(store.path).get(run.id) == run


def test_to_dict_is_the_run_api_json(store: RunStore) -> None:
    run = store.create("add", {"x": 1})

    data = run.to_dict("http://127.0.0.1:9000/")

    assert list(data) == [
        "id", "task", "status", "inputs", "outputs", "error", "attempts", "url",
        "created_at", "started_at", "finished_at",
    ]  # fmt: skip
    assert data["url"] == f"http://127.0.0.1:9000/runs/{run.id}"
    assert (data["status"], data["inputs"], data["attempts"]) == ("queued", {"x": 1}, 0)
    assert data["created_at"].endswith("+00:00") and data["started_at"] is None
