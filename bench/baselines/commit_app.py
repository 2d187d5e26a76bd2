"""The limit baseline for bench/runs.py: a hand-written FastAPI route that only stores each
POSTed run as one committed SQLite row, as durable as engine's run store (WAL mode,
`synchronous=NORMAL`, one commit per request), and answers 201 with its id.

No queue, no worker, no state changes after: what HTTP plus one durable write per request
allow on this machine, the ceiling of the run API's submissions.

    COMMIT_DB=/tmp/x.db COMMIT_TOKEN=t uvicorn commit_app:app
"""

import json
import os
import sqlite3
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
TOKEN = f"Bearer {os.environ['COMMIT_TOKEN']}"
db = sqlite3.connect(os.environ["COMMIT_DB"], check_same_thread=False, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute(
    "CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, task TEXT,"
    " inputs TEXT, created_at REAL)"
)


@app.get("/health")
async def health() -> dict:
    return {"status": "healthy"}


@app.post("/api/v1/runs", status_code=201)
async def submit(request: Request) -> JSONResponse:
    if request.headers.get("authorization") != TOKEN:
        return JSONResponse({"detail": "unauthorized"}, 401)
    body = await request.json()
    run_id = uuid.uuid4().hex
    db.execute(
        "INSERT INTO runs (id, task, inputs, created_at) VALUES (?, ?, ?, ?)",
        (run_id, body["task"], json.dumps(body.get("inputs", {})), time.time()),
    )
    return JSONResponse({"id": run_id, "status": "queued"}, 201)
