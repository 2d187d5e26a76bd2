"""Read a YAML spec into plain data, remembering where every key and value stood.

PyYAML silently keeps the last of two duplicate keys and reads `on`, `yes`, `no` and `off`
as booleans (YAML 1.1). Here a duplicate key is an error, a non-string key is an error, and
every scalar keeps its source text so that later stages can explain such surprises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Diagnostic, SpecError

# libyaml's parser where PyYAML was built with it: the same nodes and marks, much faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

JsonPath = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"
_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in the source file."""

    line: int
    col: int


@dataclass(frozen=True)
class Scalar:
    """How a scalar was written: its text, and whether it was quoted."""

    text: str
    quoted: bool


@dataclass
class Document:
    """A loaded spec: the data, and the source position of every value and key."""

    file: str
    data: Any
    values: dict[JsonPath, Mark] = field(default_factory=dict)
    keys: dict[JsonPath, Mark] = field(default_factory=dict)
    scalars: dict[JsonPath, Scalar] = field(default_factory=dict)

    def mark(self, path: JsonPath, *, key: bool = False) -> Mark:
        """The position of the value (or key) at `path`, or of its nearest known parent."""
        table = self.keys if key else self.values
        while path:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Mark(1, 1))

    def diagnostic(self, path: JsonPath, message: str, *, key: bool = False) -> Diagnostic:
        """A diagnostic positioned at `path`."""
        mark = self.mark(path, key=key)
        return Diagnostic(self.file, mark.line, mark.col, format_path(path), message)


def format_path(path: JsonPath) -> str:
    """`("apps", "web", "routes", 0)` -> `apps.web.routes[0]`; the root is `$`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("-", "").replace("_", "").isalnum():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "$"


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


MAX_VALUES = 100_000
"""The most values (scalars, lists, mappings) a spec may hold once its aliases are expanded.

A real spec holds hundreds. An alias bomb (`b: [*a, *a, ...]`, nested) composes into a few
nodes that expand to billions of values: counting stops it before it takes the memory.
"""

MAX_ALIAS_TEXT = 10 * 1024 * 1024
"""The most characters of text that aliases may repeat, all expansions together."""


class AliasBomb(Exception):
    """Raised when expanding aliases passes MAX_VALUES or MAX_ALIAS_TEXT."""

    def __init__(self, path: JsonPath) -> None:
        super().__init__(path)
        self.path = path


class _Builder:
    """Turns a composed YAML node graph into plain data, recording positions."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[Diagnostic] = []
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        self._built: set[int] = set()  # nodes built once: building one again is an alias
        self._values = 0
        self._alias_text = 0

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self._values += 1
        again = id(node) in self._built
        if again and isinstance(node, yaml.ScalarNode):
            self._alias_text += len(node.value)
        if self._values > MAX_VALUES or self._alias_text > MAX_ALIAS_TEXT:
            raise AliasBomb(path)
        self._built.add(id(node))
        self.doc.values[path] = _mark(node)
        if id(node) in self._active:
            self._error(node, path, "an alias refers to itself; YAML recursion is not allowed")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)  # the only other kind of node
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        self.doc.scalars[path] = Scalar(node.value, node.style not in (None, ""))
        if node.tag == _STR:  # most scalars: no construction needed
            return node.value
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            self._error(node, path, f"cannot read this value: {problem}")
            return None
        # A spec holds JSON values: a date or !!binary keeps the text it was written as.
        return value if isinstance(value, _JSON_SCALARS) else node.value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        not_mappings: list[yaml.Node] = []
        pairs = _merged_pairs(node, not_mappings)
        for bad in not_mappings:
            self._error(bad, path, "`<<` merges a mapping or a list of mappings (e.g. <<: *base)")
        for key_node, value_node in pairs:
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in first_seen:
                first = first_seen[key]
                self._error(
                    key_node,
                    child,
                    f"duplicate key {key!r} (first at line {first.line}); "
                    "YAML would silently keep only the last one: remove or rename one",
                )
                continue
            first_seen[key] = _mark(key_node)
            self.doc.keys[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result

    def _key(self, node: yaml.Node, path: JsonPath) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self._error(node, path, "a key must be a plain string, not a list or a mapping")
            return None
        if node.tag == _STR:  # nearly every key: no construction needed
            return node.value
        value = self._constructor.construct_object(node, deep=True)
        if isinstance(value, str):
            return value
        hint = _yaml11_hint(node.value, value)
        self._error(
            node, (*path, node.value), f"key {node.value!r} is not a string{hint}; quote it"
        )
        return None

    def _error(self, node: yaml.Node, path: JsonPath, message: str) -> None:
        mark = _mark(node)
        self.errors.append(
            Diagnostic(self.doc.file, mark.line, mark.col, format_path(path), message)
        )


def _merged_pairs(
    node: yaml.MappingNode, not_mappings: list[yaml.Node]
) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's key/value node pairs with `<<` merge keys applied (explicit keys win).

    Merge sources that are not mappings are added to `not_mappings`.
    """
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    merged.extend(_merged_pairs(source, not_mappings))
                else:
                    not_mappings.append(source)
        else:
            pairs.append((key_node, value_node))
    explicit = {k.value for k, _ in pairs if isinstance(k, yaml.ScalarNode)}
    return pairs + [(k, v) for k, v in merged if k.value not in explicit]


def _yaml11_hint(text: str, value: Any) -> str:
    """Explain why YAML turned `text` into something that is not a string."""
    if isinstance(value, bool):
        return f" (YAML 1.1 reads {text} as the boolean {str(value).lower()})"
    if value is None:
        return " (YAML reads it as null)"
    if isinstance(value, int | float):
        return f" (YAML reads {text} as a number)"
    return f" (YAML reads it as {type(value).__name__})"


def yaml_type_hint(doc: Document, path: JsonPath, value: Any) -> str:
    """A hint for a non-string value where a string was expected, if YAML surprised the user."""
    scalar = doc.scalars.get(path)
    if scalar is None or scalar.quoted or isinstance(value, str):
        return ""
    return _yaml11_hint(scalar.text, value) + f"; write '{scalar.text}' in quotes for text"


def load_text(text: str, file: str) -> Document:
    """Parse `text` (the contents of `file`) into a Document, or raise SpecError."""
    doc = Document(file=file, data=None)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_diagnostic(file, text, exc)]) from exc
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_diagnostic(file, text, exc)]) from exc
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError([Diagnostic(file, 1, 1, "$", f"not valid YAML: {first_line}")]) from exc
    if len(nodes) > 1:
        mark = _mark(nodes[1])
        message = "a spec file holds one YAML document; remove the second one (after '---')"
        raise SpecError([Diagnostic(file, mark.line, mark.col, "$", message)])
    if not nodes or (nodes[0].tag == "tag:yaml.org,2002:null" and not nodes[0].value):
        message = "the file is empty: a spec needs at least `version: 1` and `project: NAME`"
        raise SpecError([Diagnostic(file, 1, 1, "$", message)])
    builder = _Builder(doc)
    try:
        doc.data = builder.build(nodes[0], ())
    except AliasBomb as bomb:
        raise SpecError([_alias_bomb_diagnostic(doc, bomb)]) from None
    if builder.errors:
        raise SpecError(builder.errors)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"the value {doc.data!r}"
        message = (
            f"the top level is {kind}; a spec is a mapping of keys "
            "(version, project, secrets, tasks, apps)"
        )
        raise SpecError([doc.diagnostic((), message)])
    return doc


def _alias_bomb_diagnostic(doc: Document, bomb: AliasBomb) -> Diagnostic:
    """Positioned at the top-level value whose expansion crossed the limit."""
    message = (
        f"YAML aliases expand this spec past {MAX_VALUES:,} values or "
        f"{MAX_ALIAS_TEXT // 1024 // 1024} MB of repeated text (an alias bomb?); "
        "a spec needs far fewer: write the repeated parts out, or nest aliases less"
    )
    return doc.diagnostic(bomb.path[:1], message)


def _syntax_diagnostic(file: str, text: str, exc: yaml.MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    # Look at the source itself: PyYAML and libyaml word the same problem differently.
    found = text[mark.index : mark.index + 1] if mark else ""
    if found == "\t" or "\\t" in problem or "tab" in problem:
        problem = "a tab character here: YAML indentation must use spaces, not tabs"
    elif found == "{" and "flow" in (exc.context or ""):
        # `{path: /chat/{room}}`: inside [...] or {...}, a bare `{` opens a mapping.
        problem = (
            "a '{' inside [...] or {...} starts a new mapping; "
            "quote the value that holds it, e.g. path: '/chat/{room}'"
        )
    elif exc.context:
        problem = f"{problem} ({exc.context})"
    return Diagnostic(file, line, col, "$", f"YAML syntax error: {problem}")


def _reader_diagnostic(file: str, text: str, exc: yaml.reader.ReaderError) -> Diagnostic:
    """A control character (or other unprintable one) that YAML refuses to read."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    col = exc.position - (before.rfind("\n") + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    message = f"YAML syntax error: the character U+{code:04X} cannot appear in YAML; remove it"
    return Diagnostic(file, line, col, "$", message)


def load_file(path: Path, label: str | None = None) -> Document:
    """Read and parse the spec at `path`, or raise SpecError naming what went wrong.

    Diagnostics name the file as `label` (by default the path), e.g. as the user typed it.
    """
    name = label or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError([Diagnostic(name, 1, 1, "$", f"cannot read: {reason}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "not UTF-8 text: save the spec as UTF-8"
        raise SpecError([Diagnostic(name, line, 1, "$", message)]) from exc
    return load_text(text, name)
