"""What generated routes tell the OpenAPI document: answer models, error answers, webhooks.

    @app.post("/runs", status_code=202, response_model=RunStarted, responses=responses(401))

Webhooks are plain Starlette routes (they need the raw bytes), which FastAPI does not list;
`document()` keeps their operations on the app and `install()` merges them into its schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["Detail", "RunFinished", "RunStarted", "document", "install", "responses"]


class Detail(BaseModel):
    """An error answer: `{"detail": "..."}`."""

    detail: Any


class RunStarted(BaseModel):
    """A run route's answer once the run is started (or a wait ran out first)."""

    id: str
    url: str | None = None
    status: str


class RunFinished(RunStarted):
    """A waiting run route's answer once the run finished: its outputs, or its error."""

    outputs: Any = None
    error: Any = None


_WHY = {
    202: "The wait ran out first: the run goes on",
    400: "The body is not JSON that engine can carry",
    401: "Missing credentials (or a missing or wrong webhook signature)",
    403: "Wrong credentials, or a task outside the route's allow list",
    404: "Unknown task",
    413: "The body is over the size limit",
    415: "The body is not JSON",
    429: "Over the rate limit; Retry-After says when to try again",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers a route can give, each `{"detail"}`."""
    return {
        code: {"model": RunStarted if code == 202 else Detail, "description": _WHY[code]}
        for code in codes
    }


def document(app: FastAPI, path: str, method: str, operation: dict[str, Any]) -> None:
    """List `operation` at `method path` in `app`'s OpenAPI document."""
    extra: dict[str, dict[str, Any]] = app.state.openapi_extra
    extra.setdefault(path, {})[method.lower()] = operation


def install(app: FastAPI) -> None:
    """Make `app.openapi()` include what `document()` recorded."""
    app.state.openapi_extra = {}
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            for path, operations in app.state.openapi_extra.items():
                schema.setdefault("paths", {}).setdefault(path, {}).update(operations)
                # Webhook operations refer to Detail, which no route may have put there.
                found = schema.setdefault("components", {}).setdefault("schemas", {})
                found.setdefault("Detail", Detail.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def webhook_operation(
    provider: str, events: Iterable[str], codes: Iterable[int], summary: str, operation_id: str
) -> dict[str, Any]:
    """The OpenAPI operation of a webhook: a JSON body in, the answers it can give out."""
    names = list(events)
    description = {
        "github": "A GitHub delivery, signed with X-Hub-Signature-256.",
        "standard": "A Standard Webhooks delivery, signed with webhook-signature.",
        "plain": "A JSON delivery.",
    }[provider]
    if names:
        description += " Events: " + ", ".join(f"`{n}`" for n in names) + "."
    answers: dict[str, Any] = {
        "200": {"description": "Handled (or a duplicate delivery)"},
        "202": {"description": "Accepted: a run started, or the event is ignored"},
    }
    detail = {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}
    for code in sorted(codes):
        answers[str(code)] = {"description": _WHY[code], "content": detail}
    return {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": answers,
    }
