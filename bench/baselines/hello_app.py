"""The baseline for bench/memory.py: the same one-route app, written by hand in FastAPI."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {"status": "healthy"}


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}
