"""The console's forms that change something (start a run, cancel one), read safely.

A web page of any site can make the person's browser POST a form to 127.0.0.1, and
the browser would send the console's cookie along were it not SameSite=Strict. Each POST
is therefore accepted only when all of these hold, so that a cross-site one changes nothing:

- its `Origin` (browsers send one with every POST) is the console's own, and its
  `Sec-Fetch-Site`, when sent, is `same-origin`;
- its body is an urlencoded form of at most `MAX_FORM` bytes;
- it carries the form token of the signed-in session (`ConsoleLogin.form_token`), which
  only the console's own pages show.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from engine.server.console_auth import ConsoleLogin

__all__ = ["FORM_TOKEN", "MAX_FORM", "Refused", "read_form"]

FORM_TOKEN = "form_token"
"""The hidden field holding the session's form token."""

MAX_FORM = 256 * 1024
"""The largest form body accepted, in bytes (inputs typed into a page)."""

_FORM_TYPE = "application/x-www-form-urlencoded"
_CROSS_SITE = (
    "This form was not sent from this console's own page, so nothing was started or "
    "cancelled (a page of another site may have tried to). Use the buttons on the "
    "console's own pages; if this was one, reload it and try again."
)


class Refused(Exception):
    """A POST the console will not act on: the status to answer and why, for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request, login: ConsoleLogin) -> dict[str, str]:
    """The fields of a form posted from the console's own page; raises Refused otherwise.

    A field sent twice keeps its last value.
    """
    if not same_origin(request):
        raise Refused(403, _CROSS_SITE)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != _FORM_TYPE:
        raise Refused(415, f"The console's forms are sent as {_FORM_TYPE}, not {media!r}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise Refused(413, f"The form is larger than {MAX_FORM // 1024} KB.")
    try:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Refused(400, "The form is not UTF-8 text.") from None
    if not login.form_token_ok(request, fields.get(FORM_TOKEN, "")):
        raise Refused(403, _CROSS_SITE)
    return fields


def same_origin(request: Request) -> bool:
    """Whether a browser says the request comes from a page of the console itself.

    A request without `Origin` is not a browser's POST (every browser sends one): it is
    let through here, and still needs the form token.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.lower() == own.lower()
