"""The moving window behind every `rate_limit:`, on a clock the test moves."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.runtime.ratelimit import MovingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(
    requests=st.integers(1, 5),
    steps=st.lists(st.tuples(st.floats(0, 3), st.sampled_from("ab")), max_size=60),
)
def test_never_more_than_requests_in_any_window_and_refused_only_when_full(
    requests: int, steps: list[tuple[float, str]]
) -> None:
    per = 2.0
    clock = Clock()
    window = MovingWindow(requests, per, clock)
    admitted: dict[str, list[float]] = {"a": [], "b": []}
    for gap, key in steps:
        clock.now += gap
        recent = [t for t in admitted[key] if t > clock.now - per]
        wait = window.hit(key)
        if len(recent) < requests:
            assert wait is None
            admitted[key].append(clock.now)
        else:  # full: refused until the oldest of the window leaves it
            assert wait is not None
            assert wait > 0
            assert wait == pytest.approx(min(recent) + per - clock.now)


def test_a_client_gone_quiet_is_forgotten_within_two_windows() -> None:
    clock = Clock()
    window = MovingWindow(3, 60.0, clock)
    for client in range(1000):
        assert window.hit(f"c:{client}") is None
    clock.now += 61
    window.hit("c:last")
    assert list(window.keys) == ["c:last"]


def test_the_refusal_says_when_the_next_request_fits() -> None:
    clock = Clock()
    window = MovingWindow(2, 10.0, clock)
    assert window.hit("k") is None
    clock.now += 4
    assert window.hit("k") is None
    clock.now += 1
    assert window.hit("k") == 5.0  # the first leaves the window at 10 s
    clock.now += 5
    assert window.hit("k") is None
