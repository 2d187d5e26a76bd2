"""Laying out generated code as `ruff format` would: calls, statements, endpoint functions
and model classes, from values `literals.literal` writes."""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any

from engine.compiler.literals import WIDTH, Construct, literal, width
from engine.compiler.pydantic_types import Default, Model


@dataclass(frozen=True)
class Block:
    """One top-level part of the module (statements, a class, a function), printed as it
    is, with a `comment` above it if there is one."""

    code: str
    comment: str = ""


def model_source(model: Model) -> str:
    """The class statement of a generated Pydantic model."""
    lines = [f"class {model.name}(BaseModel):", statement("    model_config = ", model.config, 4)]
    for item in model.fields:
        head = f"    {item.name}: "
        annotation = literal(item.annotation, 4, len(head) - 4, tail=0)
        if item.default is None:
            lines.append(head + annotation)
            continue
        value = item.default.value if isinstance(item.default, Default) else item.default
        prefix = f"{head}{annotation} = "
        lines.append(prefix + literal(value, 4, len(prefix) - 4, tail=0))
    return "\n".join(lines)


def identifier(text: str) -> str:
    """`text` if it is a Python identifier and not a keyword; otherwise ValueError."""
    if not text.isidentifier() or keyword.iskeyword(text):
        raise ValueError(f"{text!r} is not a usable Python identifier")
    return text


def call(callee: str, /, *args: Any, **kwargs: Any) -> Construct:
    """`callee(arg, ..., key=value, ...)` as a value `literal` lays out."""
    pairs: list[tuple[str | None, Any]] = [(None, a) for a in args]
    pairs += [(identifier(k), v) for k, v in kwargs.items()]
    return Construct(callee, tuple(pairs))


def statement(head: str, value: Any, indent: int = 0) -> str:
    """`head` followed by `value`, e.g. `x = ` + a call, laid out as ruff would."""
    return head + literal(value, indent, len(head) - indent, tail=0)


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Param:
    """A parameter `name: annotation = default` of a generated endpoint."""

    name: str
    annotation: Any
    default: Any = _NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT

    def source(self, indent: int | None = None) -> str:
        """Flat, or laid out on a line of its own at `indent` (before a comma)."""
        default = "" if self.default is _NO_DEFAULT else f" = {literal(self.default)}"
        head = f"{self.name}: "
        if indent is None:
            return head + literal(self.annotation, 0, 0, 0) + default
        return head + literal(self.annotation, indent, len(head), len(default) + 1) + default


def function(
    decorator: Construct, name: str, params: list[Param], returns: str, body: Any, prefix: str
) -> str:
    """`@decorator` over `async def name(params) -> returns:` with a one-line `body`."""
    head = f"async def {name}("
    tail = f") -> {returns}:"
    inner = ", ".join(p.source() for p in params)
    if width(head + inner + tail) <= WIDTH:
        signature = head + inner + tail
    elif 4 + width(inner) <= WIDTH:
        signature = f"{head}\n    {inner}\n{tail}"
    else:
        signature = head + "\n" + "".join(f"    {p.source(4)},\n" for p in params) + tail
    return f"@{literal(decorator, 0, 1, tail=0)}\n{signature}\n    {prefix}" + literal(
        body, 4, len(prefix), tail=0
    )
