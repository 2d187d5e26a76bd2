"""engine.runtime.jsonbody: what it refuses, on its fast paths (no escapes, few brackets)
and its slow ones (escapes, surrogate bytes, big texts) alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime import jsonbody
from engine.runtime.jsonbody import MAX_DEPTH, BadJson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"


def nested(depth: int, *, padding: int = 0) -> bytes:
    """`depth` nested lists, the outermost holding `padding` empty objects too (so that the
    text holds more brackets than MAX_DEPTH whatever its depth)."""
    inner = "[" * (depth - 1) + "1" + "]" * (depth - 1)
    return ("[" + "{}," * padding + inner + "]").encode()


@pytest.mark.parametrize("padding", [0, MAX_DEPTH + 1], ids=["few-brackets", "many-brackets"])
def test_nesting_up_to_the_limit_is_accepted_and_deeper_is_refused(padding: int) -> None:
    assert jsonbody.loads(nested(MAX_DEPTH, padding=padding)) is not None
    with pytest.raises(BadJson, match="nested deeper than 64"):
        jsonbody.loads(nested(MAX_DEPTH + 1, padding=padding))
    deep_object = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    with pytest.raises(BadJson, match="nested deeper"):
        jsonbody.loads(deep_object)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"text": "[" * 200, "list": [[1]]})
    assert jsonbody.loads(text)["list"] == [[1]]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": "\\ud800"}',  # an escape, in a value
        b'{"\\udfff": 1}',  # in a key
        '{"x": "\ud800"}'.encode("utf-8", "surrogatepass"),  # as bytes, no escape at all
        '["\ud800"]',  # a str given as such
    ],
    ids=["escape-value", "escape-key", "surrogate-bytes", "str"],
)
def test_lone_surrogates_are_refused(raw: bytes | str) -> None:
    with pytest.raises(BadJson, match="lone surrogate"):
        jsonbody.loads(raw)


def test_escaped_pairs_and_other_encodings_are_read_as_json_loads_reads_them() -> None:
    assert jsonbody.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert jsonbody.loads('{"a": [1]}'.encode("utf-16")) == {"a": [1]}


@pytest.mark.parametrize("raw", [b'{"x": NaN}', b"[Infinity]", b"-Infinity"])
def test_non_finite_numbers_are_refused(raw: bytes) -> None:
    with pytest.raises(BadJson, match="is not a JSON value") as refused:
        jsonbody.loads(raw)
    assert refused.value.pos is None


def test_syntax_errors_carry_their_position() -> None:
    with pytest.raises(BadJson, match="not JSON") as refused:
        jsonbody.loads(b'{"a": }')
    assert refused.value.pos == 6


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_real_payloads_parse_as_json_loads_parses_them(fixture: str) -> None:
    raw = (FIXTURES / fixture).read_bytes()
    assert jsonbody.loads(raw) == json.loads(raw)
