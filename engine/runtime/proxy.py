"""Forwarding a request to another app of the project (its endpoint from `depends_on`).

The caller's credentials for *this* app are not the target's business: the headers in
`drop` (its `Authorization` and API key) are not forwarded, and `credentials` (what the
engine minted for this app to call the target, if the target lets it) are sent instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.runtime.access import HEADER, request_id

__all__ = ["Proxy"]

log = logging.getLogger("engine.runtime")

# RFC 9110 hop-by-hop headers, plus those httpx recomputes for the new request or response.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_DROP_BACK = _HOP | {"content-encoding", "date", "server", HEADER.lower()}
_HOP_AND_ID = _HOP | {HEADER.lower()}
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}")
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class Proxy:
    """Forwards to `base_url` + the target path (the request path when none is given)."""

    def __init__(
        self,
        target: str,
        base_url: str,
        target_path: str | None,
        drop: frozenset[str] = frozenset(),
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.base_url = base_url.rstrip("/")
        self.target_path = target_path
        self.credentials = dict(credentials or {})
        self.skip = _HOP_AND_ID | {h.lower() for h in drop}

    def url_path(self, request: Request) -> str:
        """The upstream path: `target_path` with `{name}` filled from the request's path."""
        if self.target_path is None:
            return request.url.path
        params = request.path_params
        return _PARAM.sub(
            lambda m: quote(str(params.get(m.group(1), "")), safe="/"), self.target_path
        )

    async def forward(self, request: Request, http: httpx.AsyncClient) -> Response:
        """Send `request` upstream and answer what it answered (502 if it cannot be reached)."""
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in self.skip]
        present = {k.lower() for k, _ in headers}
        headers += [(k, v) for k, v in self.credentials.items() if k.lower() not in present]
        rid = request_id.get()
        if rid is not None:  # the id this app answers with, the client's or a new one
            headers.append((HEADER, rid))
        url = self.base_url + self.url_path(request)
        if request.url.query:
            url += "?" + request.url.query
        try:
            upstream = await http.request(
                request.method,
                url,
                content=await request.body(),
                headers=headers,
                timeout=_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            log.warning("proxy to %s failed: %s", self.target, type(exc).__name__)
            return JSONResponse({"detail": f"upstream {self.target} unreachable"}, 502)
        response = Response(upstream.content, upstream.status_code)
        response.raw_headers.extend(
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.multi_items()
            if k.lower() not in _DROP_BACK
        )
        return response
