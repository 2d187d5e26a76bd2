"""The attempt every target's task process makes: what it reports for each way a handler
can end. The local worker, the Kubernetes Job and the Ray job all call this one module."""

from __future__ import annotations

import math

from pydantic import BaseModel

from engine.backends.attempt import outcome, result_line, result_of


class Total(BaseModel):
    item: str
    count: int


def test_a_pydantic_model_returned_becomes_its_json_form() -> None:
    assert outcome(lambda: Total(item="tea", count=2)) == {
        "ok": True,
        "outputs": {"item": "tea", "count": 2},
    }
    nested = outcome(lambda: {"totals": [Total(item="a", count=1)]})
    assert nested == {"ok": True, "outputs": {"totals": [{"item": "a", "count": 1}]}}


def test_outputs_json_cannot_hold_fail_the_attempt_with_the_reason() -> None:
    assert outcome(lambda: {1, 2}) == {
        "ok": False,
        "error": "outputs are not JSON-serialisable: Object of type set is not JSON serializable",
    }
    not_a_number = outcome(lambda: math.nan)
    assert not_a_number["ok"] is False
    assert not_a_number["error"].startswith("outputs are not JSON-serialisable: Out of range float")


def test_a_raising_handler_reports_type_and_message() -> None:
    def broken() -> None:
        raise ValueError("it broke")

    assert outcome(broken) == {"ok": False, "error": "ValueError: it broke"}


def test_the_result_line_round_trips_through_a_log() -> None:
    payload = outcome(lambda: Total(item="tea", count=2))
    lines = ["starting", result_line(payload), ""]
    assert result_of(lines) == payload
    assert result_of(["no result here"]) is None
