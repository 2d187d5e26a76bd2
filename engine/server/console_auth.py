"""Who may read the console: the project's owner, signed in by a one-time link.

The console shows every run's inputs, outputs and logs, and the control plane listens on
127.0.0.1, where every local user can reach it. So each page asks for a credential:

- `engine apply` and `engine status` print a **one-time link**, `/login?code=...`, built by
  `console_link()` from the project's API token (which only the owner can read, in
  `.engine/control-plane.json`). The code expires after `LINK_TTL` seconds and is accepted
  once by a running control plane.
- Opening it sets a **cookie** holding a value derived from the token (HttpOnly,
  SameSite=Strict, one per project) and redirects to the console. A browser keeps it for
  `COOKIE_TTL`; a new token (a new project folder) makes it worthless.
- Scripts may send the token itself: `Authorization: Bearer <token>`.

Nothing here is stored: codes and the cookie are HMACs keyed with the token.
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
        self._session = _mac(token, "console-session")
        self.cookie = "engine_console_" + hashlib.sha256(token.encode()).hexdigest()[:12]
        self._used: dict[str, int] = {}  # nonce -> expiry, so a link works once

    def signed_in(self, request: Request) -> bool:
        """Whether `request` carries the console's cookie or the project's token."""
        cookie = request.cookies.get(self.cookie, "")
        bearer = request.headers.get("authorization", "")
        return hmac.compare_digest(cookie.encode(), self._session.encode()) or (
            hmac.compare_digest(bearer.encode(), f"Bearer {self._token}".encode())
        )

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
            response.set_cookie(
                self.cookie,
                self._session,
                max_age=COOKIE_TTL,
                path="/",
                httponly=True,
                samesite="strict",
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"  # the code is in the URL
            return response

        return router
