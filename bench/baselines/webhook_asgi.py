"""The limit baseline for bench/webhook.py: the same GitHub webhook receiver as a bare ASGI
callable, no framework at all.

It does the same work as the generated route and the hand-written FastAPI one for an
ignored event: read the raw body, check X-Hub-Signature-256 in constant time, parse the
JSON, answer 202 ignored. What it skips is everything a framework adds per request, so
its requests/s is the most this uvicorn and this machine can give such a route.
"""

import hashlib
import hmac
import json
import os

SECRET = os.environ["GITHUB_SECRET"].encode()
JSON_HEADERS = [(b"content-type", b"application/json")]


async def _answer(send, status: int, body: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/health":
        await _answer(send, 200, b'{"status":"healthy"}')
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    headers = dict(scope["headers"])
    given = headers.get(b"x-hub-signature-256", b"")
    expected = b"sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(given, expected):
        await _answer(send, 401, b'{"detail":"bad signature"}')
        return
    try:
        json.loads(body)
    except ValueError:
        await _answer(send, 415, b'{"detail":"not JSON"}')
        return
    if headers.get(b"x-github-event") == b"ping":
        await _answer(send, 200, b'{"status":"pong"}')
        return
    await _answer(send, 202, b'{"status":"ignored"}')
