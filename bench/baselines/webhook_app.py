"""The baseline for bench/webhook.py: a GitHub webhook receiver written by hand in FastAPI.

It does what the generated route does for an ignored event: read the raw body, check
X-Hub-Signature-256 in constant time, parse the JSON, and answer 202 ignored.
"""

import hashlib
import hmac
import json
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
SECRET = os.environ["GITHUB_SECRET"].encode()


@app.get("/health")
async def health() -> dict:
    return {"status": "healthy"}


@app.post("/github-webhook")
async def github_webhook(request: Request) -> JSONResponse:
    body = await request.body()
    given = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, expected):
        return JSONResponse({"detail": "bad signature"}, 401)
    try:
        json.loads(body)
    except ValueError:
        return JSONResponse({"detail": "not JSON"}, 415)
    if request.headers.get("x-github-event") == "ping":
        return JSONResponse({"status": "pong"})
    return JSONResponse({"status": "ignored"}, 202)
