"""Who may read the console: the project's owner, signed in by a one-time link.

The console shows every run's inputs, outputs and logs, and the control plane listens on
127.0.0.1, where every local user can reach it. So each page asks for a credential:

- `engine apply` and `engine status` print a **one-time link**, `/login?code=...`, built by
  `console_link()` from the project's API token (which only the owner can read, in
  `.engine/control-plane.json`). The code expires after `LINK_TTL` seconds and is accepted
  once by a running control plane.
- Opening it sets a **cookie** holding a random session id and its HMAC (HttpOnly,
  SameSite=Strict, one per project) and redirects to the console. A browser keeps it for
  `COOKIE_TTL`; a new token (a new project folder) makes it worthless.
- Scripts may send the token itself: `Authorization: Bearer <token>`.
- Each session has a **form token** (`form_token()`), an HMAC of its id: the console puts
  it in a hidden field of every form that changes something, and `form_token_ok()` checks
  it, so a page of another site cannot submit those forms on the signed-in person's behalf.

Nothing here is stored: codes, cookies and form tokens are HMACs keyed with the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse

__all__ = ["COOKIE_TTL", "LINK_TTL", "ConsoleLogin", "console_link"]

_BEARER_SESSION = "bearer"
"""The session id of a request that carries the project's token (a script's)."""

LINK_TTL = 600
"""Seconds a printed console link stays valid."""

COOKIE_TTL = 7 * 24 * 3600
"""Seconds a browser keeps its console sign-in."""


def _mac(token: str, message: str) -> str:
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def console_link(console_url: str, token: str, now: float | None = None) -> str:
    """A one-time link that signs a browser in to the console at `console_url`.

    For the CLI: print it where `apply` and `status` print the console's address.
    """
    expires = int(time.time() if now is None else now) + LINK_TTL
    nonce = secrets.token_urlsafe(12)
    code = f"{expires}.{nonce}.{_mac(token, f'console-link.{expires}.{nonce}')}"
    return f"{console_url.rstrip('/')}/login?code={quote(code)}"


class ConsoleLogin:
    """Checks a request's console credential, and signs browsers in by one-time link."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.cookie = "engine_console_" + hashlib.sha256(token.encode()).hexdigest()[:12]
        self._used: dict[str, int] = {}  # nonce -> expiry, so a link works once

    def signed_in(self, request: Request) -> bool:
        """Whether `request` carries the console's cookie or the project's token."""
        return self._session_id(request) is not None

    def form_token(self, request: Request) -> str:
        """The form token of the request's session ("" if it is not signed in)."""
        session = self._session_id(request)
        return "" if session is None else _mac(self._token, f"console-form.{session}")

    def form_token_ok(self, request: Request, sent: str) -> bool:
        """Whether `sent` is the form token of the request's own, signed-in session."""
        expected = self.form_token(request)
        return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())

    def _session_id(self, request: Request) -> str | None:
        """The id of the request's valid session: its cookie's, "bearer" for the token."""
        bearer = request.headers.get("authorization", "")
        if hmac.compare_digest(bearer.encode(), f"Bearer {self._token}".encode()):
            return _BEARER_SESSION
        session, _, mac = request.cookies.get(self.cookie, "").partition(".")
        expected = _mac(self._token, f"console-session.{session}")
        if session and hmac.compare_digest(mac.encode(), expected.encode()):
            return session
        return None

    def redeem(self, code: str, now: float | None = None) -> bool:
        """Accept `code` from `console_link` once, before it expires."""
        now = time.time() if now is None else now
        parts = code.split(".")
        if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
            return False
        expires, nonce, mac = int(parts[0]), parts[1], parts[2]
        expected = _mac(self._token, f"console-link.{expires}.{nonce}")
        if not hmac.compare_digest(mac.encode(), expected.encode()) or expires < now:
            return False
        self._used = {n: e for n, e in self._used.items() if e >= now}  # forget expired ones
        if nonce in self._used:
            return False
        self._used[nonce] = expires
        return True

    def router(self) -> APIRouter:
        """`GET /login?code=...`: set the cookie and go to the console's home page."""
        router = APIRouter(include_in_schema=False)

        @router.get("/login", name="console_login")
        def login(request: Request, code: str = "") -> RedirectResponse:
            if not self.redeem(code):
                raise HTTPException(
                    403,
                    "this console link is used up or expired: run `engine status` in the "
                    "project's folder for a new one",
                )
            home = request.url_for("console_home").path
            response = RedirectResponse(home, status_code=303)
            session = secrets.token_urlsafe(16)
            response.set_cookie(
                self.cookie,
                f"{session}.{_mac(self._token, f'console-session.{session}')}",
                max_age=COOKIE_TTL,
                path="/",
                httponly=True,
                samesite="strict",
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"  # the code is in the URL
            return response

        return router
