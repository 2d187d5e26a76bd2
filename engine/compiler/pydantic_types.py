"""JSON Schema -> Pydantic: the type annotations and model classes of a generated module.

The subset mapped to Pydantic types (`type` and type lists, `properties`, `required`,
`default`, `enum`, `const`, `minimum`/`maximum` and their exclusive forms, `multipleOf`,
`minLength`/`maxLength`, `pattern`, `items`, `minItems`/`maxItems`, `additionalProperties`
as a boolean, or as a schema of an object without `properties`) is what specs use. Any
other keyword keeps JSON Schema validation for its part: `Annotated[Any, JsonSchema({...})]`
(engine.runtime.schemas), checked by jsonschema inside Pydantic's validation.

Body models are strict (a JSON string is not an integer, as in JSON Schema); query
parameters are not, since every query value arrives as a string. `format`, `title`,
`examples` and `$comment` are annotations, which JSON Schema does not assert either.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from engine.compiler.literals import Code, Construct, Subscript

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_ANNOTATIONS = {"description", "title", "examples", "format", "$comment", "default"}
_NUMBER = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
}
_STRING = {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"}
_ARRAY = {"minItems": "min_length", "maxItems": "max_length"}
_KNOWN = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    *_ANNOTATIONS, *_NUMBER, *_STRING, *_ARRAY,
}  # fmt: skip
# Names a field cannot have on a BaseModel (its own attributes) or in Python.
_RESERVED = {
    "model_config", "model_fields", "model_computed_fields", "copy", "dict", "json",
    "schema", "schema_json", "construct", "validate", "fields", "parse_obj", "parse_raw",
    "parse_file", "from_orm", "update_forward_refs", "register", "Config",
    # The names a class body's annotations and defaults use, which a field would shadow.
    "Annotated", "Any", "Literal", "Field", "BaseModel", "ConfigDict", "JsonSchema",
}  # fmt: skip


@dataclass(frozen=True)
class ModelField:
    """`name: annotation = default` in a model class; `default` is source text or None."""

    name: str
    annotation: Any
    default: Any = None


@dataclass(frozen=True)
class Model:
    """A generated Pydantic model class."""

    name: str
    config: Construct
    fields: tuple[ModelField, ...]


@dataclass
class Types:
    """Maps schemas to annotations for one module, collecting its models and the names
    (typing, pydantic, engine.runtime.schemas) the annotations use."""

    taken: set[str]
    models: list[Model] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def class_name(self, hint: str) -> str:
        """A CamelCase class name from `hint`, unique in the module."""
        words = re.findall(r"[A-Za-z0-9]+", hint)
        base = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
        if base[0].isdigit():
            base = "Model" + base
        return unique(base, self.taken)

    def annotation(self, schema: Any, hint: str, strict: bool) -> tuple[Any, dict[str, Any]]:
        """The annotation of a value of `schema`, and the Field/Query constraints on it."""
        if schema is True or schema == {}:
            self.names.add("Any")
            return Code("Any"), {}
        if not isinstance(schema, dict) or not set(schema) <= _KNOWN or not _simple(schema):
            return self.fallback(schema), {}
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            if not values or not all(_literal_value(v) for v in values):
                return self.fallback(schema), {}
            self.names.add("Literal")
            return Subscript("Literal", tuple(values)), {}
        kinds = schema.get("type")
        if kinds is None:
            return self.fallback(schema), {}
        if isinstance(kinds, list):
            if len(set(kinds)) != len(kinds) or not kinds:
                return self.fallback(schema), {}
            members = [self._one(schema, k, hint, strict, inner=len(kinds) > 1) for k in kinds]
            if len(members) == 1:
                return members[0]
            return Code(" | ".join(_source(m[0]) for m in members)), {}
        return self._one(schema, kinds, hint, strict, inner=False)

    def _one(
        self, schema: dict[str, Any], kind: str, hint: str, strict: bool, inner: bool
    ) -> tuple[Any, dict[str, Any]]:
        if kind == "null":
            return Code("None"), {}
        if kind in _SCALARS:
            keys = _NUMBER if kind in ("integer", "number") else _STRING if kind == "string" else {}
            found = {keys[k]: schema[k] for k in keys if k in schema}
            return self._constrained(Code(_SCALARS[kind]), found, inner)
        if kind == "array":
            item, constraints = self.annotation(schema.get("items", True), hint + "Item", strict)
            if constraints:
                item = self._constrained(item, constraints, True)[0]
            found = {_ARRAY[k]: schema[k] for k in _ARRAY if k in schema}
            return self._constrained(Subscript("list", (item,)), found, inner)
        if kind == "object":
            return self._object(schema, hint, strict), {}
        return self.fallback(schema), {}

    def _constrained(
        self, annotation: Any, constraints: dict[str, Any], inner: bool
    ) -> tuple[Any, dict[str, Any]]:
        """Constraints stay with the field unless the type is one of several."""
        if not constraints or not inner:
            return annotation, constraints
        self.names |= {"Annotated", "Field"}
        return Subscript("Annotated", (annotation, Construct("Field", _items(constraints)))), {}

    def _object(self, schema: dict[str, Any], hint: str, strict: bool) -> Any:
        extra = schema.get("additionalProperties", True)
        properties = schema.get("properties")
        if properties is None:
            if isinstance(extra, dict):
                value = self.annotation(extra, hint + "Value", strict)
                value_type = self._constrained(value[0], value[1], True)[0]
                return Subscript("dict", (Code("str"), value_type))
            if extra is False:
                return self.fallback(schema)
            self.names.add("Any")
            return Subscript("dict", (Code("str"), Code("Any")))
        if not isinstance(extra, bool):
            return self.fallback(schema)
        return Code(self.model(schema, hint, strict))

    def model(self, schema: dict[str, Any], hint: str, strict: bool) -> str:
        """Add the model class of an object schema with `properties`; its name."""
        name = self.class_name(hint)
        required = set(schema.get("required", []))
        used: set[str] = set()
        fields = []
        for key, sub in schema.get("properties", {}).items():
            annotation, constraints = self.annotation(sub, name + "_" + key, strict)
            field_name = python_name(key, used, avoid=_RESERVED)
            if field_name != key:
                constraints["alias"] = key
            if isinstance(sub, dict) and sub.get("description"):
                constraints["description"] = sub["description"]
            default: Any = None
            if key not in required:
                if isinstance(sub, dict) and "default" in sub:
                    default = sub["default"]
                elif not _takes_none(annotation):
                    annotation = Code(_source(annotation) + " | None")
                constraints = {"default": default, **constraints} if constraints else constraints
            if constraints:
                self.names.add("Field")
                value: Any = Construct("Field", _items(constraints))
            else:
                value = Default(default) if key not in required else None
            fields.append(ModelField(field_name, annotation, value))
        settings: dict[str, Any] = {"strict": True} if strict else {}
        settings["extra"] = "allow" if schema.get("additionalProperties", True) else "forbid"
        self.names |= {"BaseModel", "ConfigDict"}
        self.models.append(Model(name, Construct("ConfigDict", _items(settings)), tuple(fields)))
        return name

    def fallback(self, schema: Any) -> Any:
        """`Annotated[Any, JsonSchema(schema)]`: validated by jsonschema."""
        self.names |= {"Annotated", "Any", "JsonSchema"}
        return Subscript("Annotated", (Code("Any"), Construct("JsonSchema", ((None, schema),))))


@dataclass(frozen=True)
class Default:
    """A field's plain default value (printed as `= value`)."""

    value: Any


def _items(values: dict[str, Any]) -> tuple[tuple[str | None, Any], ...]:
    return tuple(values.items())


def _takes_none(annotation: Any) -> bool:
    """Whether None is a value of `annotation` already (Any, a union with None)."""
    if isinstance(annotation, Subscript):
        return annotation.name == "Annotated" and annotation.items[0] == "Any"
    return annotation == "Any" or "None" in str(annotation).split(" | ")


def _literal_value(value: Any) -> bool:
    """Whether `Literal` matches `value` as JSON Schema does: for strings and null only,
    since `Literal[1]` also takes `True` (and `Literal[True]` takes 1)."""
    return value is None or isinstance(value, str)


def _simple(schema: dict[str, Any]) -> bool:
    """Whether the keywords' values have the shapes the mapping reads."""
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    items = schema.get("items", True)
    return (
        isinstance(required, list)
        and isinstance(properties, dict)
        and isinstance(items, dict | bool)
        and all(isinstance(r, str) for r in required)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for k, v in schema.items()
                if k in _NUMBER or k in _ARRAY or k in ("minLength", "maxLength"))
        and isinstance(schema.get("pattern", ""), str)
        and (not isinstance(schema.get("type"), list) or "enum" not in schema)
    )  # fmt: skip


def _source(annotation: Any) -> str:
    from engine.compiler.literals import literal

    return literal(annotation)


def python_name(key: str, used: set[str], avoid: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """A parameter or field name for `key`: itself if usable, else a cleaned-up form."""
    name = key
    if not (key.isidentifier() and key.isascii()) or keyword.iskeyword(key) or key in avoid:
        name = re.sub(r"[^0-9a-zA-Z_]+", "_", key).strip("_") or "value"
        if name[0].isdigit() or keyword.iskeyword(name) or name in avoid:
            name = "field_" + name
    if name.startswith("_") or name.startswith("model_"):
        name = "field" + name if name.startswith("_") else "field_" + name
    return unique(name, used)


def unique(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`...: the first not in `taken` (which it joins)."""
    name, n = base, 1
    while name in taken or keyword.iskeyword(name):
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name
