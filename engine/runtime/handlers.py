"""Calling a user's handler function with the values of a request.

The handler gets path and query values by name and the body as `body=` (only the names it
accepts, unless it takes `**kwargs`), plus `request=` if it asks for it. A parameter
annotated with a Pydantic model gets its value validated into the model: invalid input is
answered 422 in FastAPI's shape, and the handler is not called. Its return value is the
JSON response; a Starlette Response is returned as is, and an HTTPException it raises is
answered as FastAPI would. Anything else it raises gets a
500 with a short message; the traceback goes to the log only.

Sync handlers run in threads of their own pool (`ENGINE_HANDLER_THREADS`, default 40),
never in the pool the engine's own work uses (webhook dedupe, run starts), so hung
handlers cannot starve signed webhooks. A handler that has not answered after
`ENGINE_HANDLER_TIMEOUT` seconds (default 60) gets a 504; an async one is cancelled, and a
sync one queued behind busy threads never starts (a running thread cannot be stopped in
Python: it keeps its slot until it returns).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.runtime.models import InvalidArguments, model_parameters, validate_arguments

__all__ = ["Handler", "Parsed", "handler_name"]

log = logging.getLogger("engine.runtime")


HANDLER_THREADS = int(os.environ.get("ENGINE_HANDLER_THREADS", "40"))
HANDLER_TIMEOUT = float(os.environ.get("ENGINE_HANDLER_TIMEOUT", "60"))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The threads of the app's sync handlers (made at first use, kept for the app's life)."""
    return ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="handler")


@dataclass(frozen=True)
class Parsed:
    """A request's validated values, as handlers and expressions see them."""

    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def handler_name(function: Callable[..., Any]) -> str:
    """`module:function` of a handler, as the spec names it."""
    return f"{function.__module__}:{function.__qualname__}"


class Handler:
    """A user function with its signature inspected once."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.name = handler_name(function)
        params = inspect.signature(function).parameters.values()
        self.takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        self.names = {
            p.name
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        self.is_async = inspect.iscoroutinefunction(function)
        self.models = model_parameters(function)

    def arguments(self, parsed: Parsed, request: Request) -> dict[str, Any]:
        """The keyword arguments this handler accepts, out of the request's values."""
        offered = {**parsed.query, **parsed.path, "body": parsed.body}
        if self.takes_all:
            return offered | ({"request": request} if "request" in self.names else {})
        offered["request"] = request
        return {name: value for name, value in offered.items() if name in self.names}

    async def respond(self, request: Request, parsed: Parsed) -> Response:
        """Call the handler and turn its result (or its failure) into a response."""
        kwargs = self.arguments(parsed, request)
        if self.models:
            try:
                kwargs = validate_arguments(self.models, kwargs, _locator(parsed))
            except InvalidArguments as exc:
                return JSONResponse({"detail": exc.errors}, 422)
        try:
            if self.is_async:
                call = self.function(**kwargs)
            else:
                context = contextvars.copy_context()
                work = functools.partial(context.run, self.function, **kwargs)
                call = asyncio.get_running_loop().run_in_executor(_pool(), work)
            result = await asyncio.wait_for(call, HANDLER_TIMEOUT)
        except TimeoutError:
            log.error("handler %s did not answer within %g s", self.name, HANDLER_TIMEOUT)
            detail = f"handler {self.name} did not answer within {HANDLER_TIMEOUT:g} s"
            return JSONResponse({"detail": detail}, 504)
        except HTTPException:
            raise
        except Exception:
            log.exception("handler %s raised", self.name)
            return JSONResponse({"detail": f"Internal error in handler {self.name}"}, 500)
        if isinstance(result, Response):
            return result
        return JSONResponse(jsonable_encoder(result))


def _locator(parsed: Parsed) -> Callable[[str], list[Any]]:
    """Where a parameter's value came from, as FastAPI locates errors: body, query, path."""

    def locate(name: str) -> list[Any]:
        if name in parsed.path:
            return ["path", name]
        return ["body"] if name == "body" else ["query", name]

    return locate
