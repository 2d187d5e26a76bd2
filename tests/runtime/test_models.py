"""Pydantic models as task inputs: what the task worker calls before the task's function."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from engine.runtime.models import InvalidArguments, task_arguments


class Commit(BaseModel):
    sha: str
    branch: str = "main"


def deploy(commit: Commit, dry_run: bool = False) -> dict[str, object]:
    return {"sha": commit.sha, "dry_run": dry_run}


def test_a_model_input_arrives_as_the_model() -> None:
    kwargs = task_arguments(deploy, {"commit": {"sha": "abc"}, "dry_run": True})
    assert kwargs == {"commit": Commit(sha="abc", branch="main"), "dry_run": True}
    assert deploy(**kwargs) == {"sha": "abc", "dry_run": True}


def test_a_bad_model_input_names_the_input_and_the_field() -> None:
    with pytest.raises(InvalidArguments) as caught:
        task_arguments(deploy, {"commit": {"branch": 3}})
    assert str(caught.value) == (
        "commit.sha: Field required; commit.branch: Input should be a valid string"
    )
    assert [e["loc"] for e in caught.value.errors] == [["commit", "sha"], ["commit", "branch"]]


def test_a_function_without_models_gets_its_inputs_unchanged() -> None:
    def add(x: int) -> int:
        return x + 1

    assert task_arguments(add, {"x": "not converted"}) == {"x": "not converted"}
