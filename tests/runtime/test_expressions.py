import subprocess
import sys
from typing import Any

import pytest

from engine.runtime.actions import context
from engine.runtime.expressions import ExpressionError, check_syntax, compile_value

CTX = context(
    path={"name": "ada"},
    query={"n": 3},
    body={"items": [1, 2], "user": {"login": "octocat"}, "flag": True},
    headers={"x-request-id": "r1"},
    event="push",
    delivery="d-1",
    endpoints={"backend": "http://127.0.0.1:9"},
)


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ("${{ body }}", CTX["body"]),
        ("${{ body.items }}", [1, 2]),
        ("  ${{ query.n }}  ", 3),
        ("${{ body.flag }}", True),
        ("${{ query.n + 1 }}", 4),
        ("hi ${{ path.name }}!", "hi ada!"),
        ("${{ event }}/${{ delivery }}", "push/d-1"),
        ("n=${{ query.n }} items=${{ body.items }} f=${{ body.flag }}", "n=3 items=[1, 2] f=true"),
        ("${{ headers['x-request-id'] }}", "r1"),
        ("${{ endpoints.backend }}/x", "http://127.0.0.1:9/x"),
        ("no expression", "no expression"),
        ({"a": ["${{ body.user.login }}", 5, None]}, {"a": ["octocat", 5, None]}),
    ],
    ids=repr,
)
def test_values_evaluate(tree: Any, expected: Any) -> None:
    assert compile_value(tree)(CTX) == expected


def test_missing_keys_give_none_or_empty_text() -> None:
    assert compile_value("${{ body.nothing.deeper }}")(CTX) is None
    assert compile_value("[${{ body.nothing }}]")(CTX) == "[]"


@pytest.mark.parametrize(
    "text",
    [
        "${{ ''.__class__.__mro__ }}",
        "${{ body.__class__ }}",
        "${{ __import__('os').system('touch /tmp/pwned') }}",
        "${{ body.items.append(3) }}",
        "${{ cycler.__init__.__globals__ }}",
        "${{ lipsum.__globals__ }}",
        "${{ body.nothing() }}",
    ],
)
def test_sandbox_refuses_escapes(text: str) -> None:
    render = compile_value(text)
    with pytest.raises(ExpressionError):
        render(CTX)
    assert CTX["body"]["items"] == [1, 2]


def test_check_syntax_reports_column() -> None:
    assert check_syntax("a ${{ body }} b") is None
    assert check_syntax("no expressions") is None
    assert check_syntax("ab ${{ body. }}") == "column 4: expected name or number"
    assert check_syntax("x ${{ body") == "column 3: '${{' is not closed by '}}'"


def test_compile_rejects_bad_syntax() -> None:
    with pytest.raises(ExpressionError, match="column 1"):
        compile_value({"k": "${{ 1 + }}"})


def test_jinja2_is_imported_only_once_an_expression_is_compiled() -> None:
    """An app without expressions does not carry Jinja2 (2 MiB of its memory)."""
    code = (
        "import sys\n"
        "from engine.runtime import app as rt\n"
        "from engine.runtime.expressions import compile_value\n"
        "app = rt.create_app(project='p', name='a')\n"
        "answer = rt.respond(app, 200, {'a': 1})\n"
        "assert 'jinja2' not in sys.modules, 'imported without an expression'\n"
        "assert compile_value('${{ body.x }}')({'body': {'x': 2}}) == 2\n"
        "assert 'jinja2' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
