"""Webhook receivers: `github`, `standard` (Standard Webhooks / Svix) and `plain`.

Order of checks (the spec's runtime contract): a `rate_limit` -> 429; a declared
Content-Length over `max_body` -> 413 at once; auth (`plain`, or any provider given `auth`)
-> 401/403; the body, read as a stream and abandoned -> 413 as soon as it passes
`max_body`; the signature over the raw bytes -> 401; JSON parsing -> 415 (github) or 400.
Then `ping` (github) -> 200, unlisted events -> the `*` action if there is one, else 202
ignored, and finally the event's action.

Dedupe: a `run` action sends the delivery id as the run's idempotency key, held `dedupe`
seconds by the run store (shared by every replica of the app, and kept across restarts);
a delivery whose key names a run already answers 200 duplicate. Only a created run uses
up a key: a delivery refused (4xx: unknown task, bad inputs) or failed before its run was
created is handled again when redelivered. `respond` actions start nothing, so a
redelivery to one is answered again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from engine.runtime import ConfigError, jsonbody, secret
from engine.runtime.access import request_id
from engine.runtime.actions import Action, Respond, Run, compile_action, context
from engine.runtime.auth import Auth, resolve
from engine.runtime.ratelimit import Limiter, too_many
from engine.runtime.runclient import DuplicateRun
from engine.runtime.shared import Shared
from engine.runtime.signatures import (
    BadSignature,
    standard_header,
    standard_key,
    verify_github,
    verify_standard,
)

__all__ = ["CATCH_ALL", "PROVIDERS", "Webhook"]

PROVIDERS = ("github", "standard", "plain")

log = logging.getLogger("engine.webhooks")
CATCH_ALL = "*"
"""The `events:` key whose action handles every event not listed by name."""

# The answers that carry nothing of the request, rendered once (a Response may be sent any
# number of times; the access middleware copies its headers rather than changing them).
_PONG = JSONResponse({"status": "pong"})
_IGNORED = JSONResponse({"status": "ignored"}, 202)


class _Reject(Exception):
    """A request refused with `status` and `detail`."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.response = JSONResponse({"detail": detail}, status, headers=dict(headers or {}))


class Webhook:
    """One webhook endpoint, its secrets read and its actions compiled: an ASGI app, served
    by a plain Starlette route (a webhook needs the raw bytes of its body, none of FastAPI's
    parameter parsing, which cost ~10% of each delivery: docs/performance.md)."""

    def __init__(
        self,
        state: Shared,
        *,
        path: str,
        provider: str,
        secret_envs: tuple[str, ...],
        events: Mapping[str, Respond | Run] | None,
        action: Respond | Run | None,
        max_body: int,
        dedupe: float | None,
        auth: Auth,
        limiter: Limiter | None = None,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown webhook provider {provider!r}: one of {PROVIDERS}")
        if provider != "plain" and not secret_envs:
            raise ValueError(f"a {provider} webhook needs at least one secret")
        self.state = state
        self.provider = provider
        self.guard = resolve(auth, state.project, state.name)
        self.keys = [self._key(var) for var in secret_envs]
        self.events = {name: compile_action(a) for name, a in (events or {}).items()}
        self.action = None if action is None else compile_action(action)
        self.max_body = max_body
        self.limiter = limiter
        self.dedupe = dedupe if provider != "plain" else None  # plain has no delivery id
        self.path = path
        self.count: Callable[[str], None] | None = None
        if state.metrics:
            from engine.runtime.metrics import webhook_delivery

            self.count = webhook_delivery(state.name, path)
        actions = [*(events or {}).values(), *([action] if action else [])]
        if any(isinstance(a, Run) for a in actions):
            state.need_runs()

    def _key(self, var: str) -> bytes:
        value = secret(var)
        if not value:  # an HMAC under an empty key is one anybody can compute
            raise ConfigError(f"secret {var} is empty: a webhook cannot be signed with it")
        return standard_key(value, var) if self.provider == "standard" else value.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        """The answer to one delivery; a refusal is logged with its reason (the detail
        answered, which never holds a secret or a signature)."""
        try:
            response, result = await self._handle(request)
        except _Reject as reject:
            response, result = reject.response, "rejected"
            self._refused(response.status_code, str(reject))
        if self.count is not None:
            self.count(result)
        return response

    def _refused(self, status: int, why: str) -> None:
        log.warning(
            "webhook %s refused a delivery with %d: %s (id=%s)",
            self.path,
            status,
            why,
            request_id.get(),
        )

    async def _handle(self, request: Request) -> tuple[Response, str]:
        """The response and the delivery's result (see engine.runtime.metrics.WEBHOOKS)."""
        wait = await self.limiter.hit(request) if self.limiter else None
        if wait is not None and self.limiter:
            self._refused(429, "over its rate limit")
            return too_many(self.limiter, wait), "rejected"
        self._check_declared_length(request)
        denied = self.guard.check(request.headers)
        if denied:
            raise _Reject(denied.status, denied.detail, denied.headers)
        raw = await self._read(request)
        self._verify(request, raw)
        body = self._parse(raw)
        event, delivery = self._event(request, body)
        if self.provider == "github" and event == "ping" and "ping" not in self.events:
            return _PONG, "ignored"
        action = self.action if self.provider == "plain" else self._route(event)
        if action is None:
            return _IGNORED, "ignored"
        ctx = context(
            path=request.path_params,
            query=request.query_params,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            event=event,
            delivery=delivery,
            endpoints=self.state.endpoints,
        )
        runs = self.state.runs()
        if runs is not None and delivery and self.dedupe:
            runs = runs.keyed(delivery, self.dedupe)
        try:
            response = await action(ctx, runs)
        except DuplicateRun:
            return JSONResponse({"status": "duplicate", "delivery": delivery}), "duplicate"
        return response, "accepted" if response.status_code < 500 else "failed"

    def _check_declared_length(self, request: Request) -> None:
        declared = request.headers.get("content-length")
        if declared is None:
            return
        if not declared.isdigit():
            raise _Reject(400, "malformed Content-Length header")
        if int(declared) > self.max_body:
            raise _Reject(413, f"body over {self.max_body} bytes")

    async def _read(self, request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _Reject(413, f"body over {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self, request: Request, raw: bytes) -> None:
        try:
            if self.provider == "github":
                verify_github(request.headers, raw, self.keys)
            elif self.provider == "standard":
                verify_standard(request.headers, raw, self.keys)
        except BadSignature as exc:
            raise _Reject(401, str(exc)) from None

    def _parse(self, raw: bytes) -> Any:
        try:
            return jsonbody.loads(raw)
        except jsonbody.BadJson as exc:
            if exc.pos is None:  # JSON, but not what engine can carry
                raise _Reject(400, f"body: {exc}") from None
            if self.provider == "github":
                raise _Reject(
                    415, "body is not JSON: set the webhook's content type to application/json"
                ) from None
            raise _Reject(400, "body is not JSON") from None

    def _event(self, request: Request, body: Any) -> tuple[str | None, str | None]:
        if self.provider == "github":
            event = request.headers.get("x-github-event")
            if not event:
                raise _Reject(400, "missing X-GitHub-Event header")
            return event, request.headers.get("x-github-delivery")
        if self.provider == "standard":
            event = body.get("type") if isinstance(body, dict) else None
            if not isinstance(event, str):
                raise _Reject(400, "body has no string 'type' field")
            return event, standard_header(request.headers, "id")
        return None, None

    def _route(self, event: str | None) -> Action | None:
        """The action of `event`: its own, else the catch-all's (`*`), else none."""
        return self.events.get(event or "") or self.events.get(CATCH_ALL)
