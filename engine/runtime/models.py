"""Pydantic models as handler and task parameters: the value is validated into the model.

    models = model_parameters(function)          # {"body": Order}, once per function
    kwargs = validate_arguments(models, kwargs)  # raises pydantic.ValidationError

For a task, the worker calls `task_arguments(function, inputs)` before calling it. Nothing
here imports pydantic: a function annotated with a model was defined by a module that
imported pydantic already, so a function without one costs nothing.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["InvalidArguments", "model_parameters", "task_arguments", "validate_arguments"]


def model_parameters(function: Callable[..., Any]) -> dict[str, type]:
    """Parameter name -> Pydantic model class, for each parameter annotated with one."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return {}
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an unresolvable forward reference: no model can be told apart
        return {}
    names = inspect.signature(function).parameters
    return {
        name: hint
        for name, hint in hints.items()
        if name in names and isinstance(hint, type) and issubclass(hint, pydantic.BaseModel)
    }


class InvalidArguments(ValueError):
    """Raised when values fail their models; `errors` are in FastAPI's 422 shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def validate_arguments(
    models: Mapping[str, type],
    kwargs: dict[str, Any],
    locate: Callable[[str], list[Any]] = lambda name: [name],
) -> dict[str, Any]:
    """`kwargs` with each model parameter's value validated into its model (an instance is
    kept). Raises InvalidArguments, each error located under `locate(parameter)`."""
    result = dict(kwargs)
    errors: list[dict[str, Any]] = []
    for name, model in models.items():
        if name not in result or isinstance(result[name], model):
            continue
        try:
            result[name] = model.model_validate(result[name])  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            errors += _details(exc, locate(name))
    if errors:
        raise InvalidArguments(errors)
    return result


def task_arguments(function: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A task's inputs as its function's keyword arguments, model inputs validated into
    their models. Raises InvalidArguments (its message names each input and field)."""
    return validate_arguments(model_parameters(function), inputs)


def _details(error: Any, prefix: list[Any]) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"], "input": e.get("input")}
        for e in error.errors(include_url=False)
    ]
