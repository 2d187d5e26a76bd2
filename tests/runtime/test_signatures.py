"""The official vectors of tests/fixtures/github/README.md, checked by the verifiers."""

import base64
import hashlib
import hmac

import pytest

from engine.runtime import ConfigError
from engine.runtime.signatures import BadSignature, standard_key, verify_github, verify_standard

GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
STANDARD_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
STANDARD_BODY = b'{"test": 2432232314}'


def test_github_vector() -> None:
    expected = "sha256=" + hmac.new(GITHUB_SECRET, b"Hello, World!", hashlib.sha256).hexdigest()
    assert expected == GITHUB_HEADER
    verify_github({"x-hub-signature-256": GITHUB_HEADER}, b"Hello, World!", [GITHUB_SECRET])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-hub-signature-256": "sha256=zz"},
        {"x-hub-signature": "sha1=" + "0" * 40},
        {"x-hub-signature-256": GITHUB_HEADER.replace("sha256=", "sha1=")},
        {"x-hub-signature-256": GITHUB_HEADER[:-1] + "0"},
    ],
    ids=["missing", "malformed", "sha1-only", "wrong-prefix", "wrong"],
)
def test_github_refusals(headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        verify_github(headers, b"Hello, World!", [GITHUB_SECRET])


def test_standard_vector() -> None:
    key = standard_key(STANDARD_KEY, "SECRET")
    assert key == base64.b64decode(STANDARD_KEY.removeprefix("whsec_"))
    verify_standard(STANDARD_HEADERS, STANDARD_BODY, [key], now=1614265330)
    several = STANDARD_HEADERS | {
        "webhook-signature": "v1,bm90IGl0 " + STANDARD_HEADERS["webhook-signature"]
    }
    verify_standard(several, STANDARD_BODY, [key], now=1614265330 + 299)


@pytest.mark.parametrize(
    ("change", "now"),
    [
        ({}, 1614265330 + 301),
        ({}, 1614265330 - 301),
        ({"webhook-signature": "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, 1614265330),
        ({"webhook-timestamp": "soon"}, 1614265330),
        ({"webhook-id": "msg_other"}, 1614265330),
    ],
    ids=["too-old", "too-new", "unknown-version", "malformed-timestamp", "other-id"],
)
def test_standard_refusals(change: dict[str, str], now: float) -> None:
    key = standard_key(STANDARD_KEY, "SECRET")
    with pytest.raises(BadSignature):
        verify_standard(STANDARD_HEADERS | change, STANDARD_BODY, [key], now=now)


def test_standard_key_must_be_base64() -> None:
    with pytest.raises(ConfigError, match="secret SECRET is not a Standard Webhooks secret"):
        standard_key("whsec_not base64!", "SECRET")
