"""The structural check of a JSON Schema, made before any value is generated for it.

Theory of operation: the generator (:mod:`sim.schema_values`) visits only the
subschemas a random draw leads it to, so a typo in an optional property would
fail one request in two. :func:`check_schema` walks every subschema once, up
front (iteratively, each node once, so deep or self-referencing schemas cost
no recursion), so a bad schema fails on every request with the same path and
message, and the generator may trust the shape of every keyword it reads.
Paths are dotted (``properties.location.type``); a problem inside a ``$ref``
target is reported where the target lives (``$defs.Node.properties.kids``).

What is checked is what the generator relies on: each subschema is an object
or a boolean, ``type`` names real types, ``$ref`` points into the document,
numbers, counts and lists have their JSON types, ``pattern`` compiles with
Python's ``re`` (the engine ``jsonschema`` matches with) and lower bounds do
not pass upper ones. Unknown keywords are ignored, as JSON Schema says.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from sim.errors import UnderstudyError

TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
# Largest minLength / minItems / minProperties filled: a bigger one is a typo or an attack.
MAX_COUNT = 10_000
MAX_SUBSCHEMAS = 20_000

_SCHEMA_KEYS = (
    "not",
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "if",
    "then",
    "else",
)
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")  # draft 7's items may be a list
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COUNT_PAIRS = (
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)


class SchemaError(UnderstudyError):
    """A JSON Schema that no value can be generated for; ``path`` points at the bad part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def join(path: str, *parts: object) -> str:
    """``path`` extended by keyword names or indexes, dotted."""
    return ".".join([path, *map(str, parts)] if path else map(str, parts))


def kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, Mapping) else type(value).__name__


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def declared_types(declared: object) -> list[str]:
    """The ``type`` keyword's value as a list (empty when absent)."""
    return [declared] if isinstance(declared, str) else list(declared) if isinstance(declared, list) else []


def is_type(value: object, name: str) -> bool:
    """Whether a JSON value is of the JSON Schema type ``name`` (``1.0`` is an integer, ``true`` is no number)."""
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return name == "number" or isinstance(value, int) or value.is_integer()
    expected = {"null": type(None), "boolean": bool, "string": str, "array": list, "object": Mapping}[name]
    return isinstance(value, expected)


def resolve(root: object, ref: object, path: str) -> tuple[Any, str]:
    """The target of ``$ref`` (found at ``path``) and the dotted path where it lives."""
    where = join(path, "$ref")
    if not isinstance(ref, str):
        raise SchemaError(where, f"$ref must be a string, got {kind(ref)}")
    if not ref.startswith("#"):
        raise SchemaError(where, f"{ref!r} is not a local reference; only ones like '#/$defs/Name' can be resolved")
    pointer = unquote(ref[1:])
    if pointer and not pointer.startswith("/"):
        raise SchemaError(where, f"{ref!r}: anchors are not supported; use a JSON pointer like '#/$defs/Name'")
    node, parts = root, list[str]()
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isascii() and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            place = ".".join(parts) or "the root schema"
            raise SchemaError(where, f"{ref!r} points at nothing: there is no {token!r} in {place}")
        parts.append(token)
    if not isinstance(node, Mapping | bool):
        raise SchemaError(where, f"{ref!r} points at {kind(node)}, not a schema")
    return node, ".".join(parts)


def number_bounds(schema: Mapping[str, Any]) -> tuple[Any, bool, Any, bool]:
    """``(low, low_exclusive, high, high_exclusive)``; draft 4's boolean exclusives included."""
    bounds: list[Any] = []
    for inclusive, exclusive, tighter in (("minimum", "exclusiveMinimum", 1), ("maximum", "exclusiveMaximum", -1)):
        bound, strict = schema.get(inclusive), schema.get(exclusive)
        if strict is True and bound is not None:
            bounds += [bound, True]
        elif is_number(strict) and (bound is None or (strict - bound) * tighter >= 0):
            bounds += [strict, True]
        else:
            bounds += [bound, False]
    return bounds[0], bounds[1], bounds[2], bounds[3]


def check_schema(schema: object) -> None:
    """Raise :class:`SchemaError` for the first structural problem found in ``schema``."""
    pending: list[tuple[object, str]] = [(schema, "")]
    seen: set[int] = set()
    while pending:
        node, path = pending.pop()
        if isinstance(node, bool) or id(node) in seen:
            continue
        if not isinstance(node, Mapping):
            raise SchemaError(path, f"expected a schema (an object, true or false), got {kind(node)}")
        seen.add(id(node))
        if len(seen) > MAX_SUBSCHEMAS:
            raise SchemaError(path, f"schema has more than {MAX_SUBSCHEMAS} subschemas")
        _check_keywords(node, path)
        if "$ref" in node:
            pending.append(resolve(schema, node["$ref"], path))
        pending.extend(_subschemas(node, path))


def _subschemas(node: Mapping[str, Any], path: str) -> Iterator[tuple[object, str]]:
    for key in _SCHEMA_KEYS:
        if key in node:
            yield node[key], join(path, key)
    for key in _SCHEMA_MAP_KEYS:
        if key in node:
            yield from ((child, join(path, key, name)) for name, child in mapping(node, key, path).items())
    for key in _SCHEMA_LIST_KEYS:
        if key not in node:
            continue
        children = node[key]
        if key == "items" and not isinstance(children, list):
            yield children, join(path, key)
            continue
        if not isinstance(children, list) or (key in ("allOf", "anyOf", "oneOf") and not children):
            raise SchemaError(join(path, key), f"{key} must be a non-empty list of schemas, got {kind(children)}")
        yield from ((child, join(path, key, index)) for index, child in enumerate(children))


def mapping(node: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """``node[key]`` where it must be an object; empty when absent."""
    value = node.get(key, {})
    if not isinstance(value, Mapping):
        raise SchemaError(join(path, key), f"{key} must be an object, got {kind(value)}")
    return value


def _check_keywords(node: Mapping[str, Any], path: str) -> None:
    # Most nodes carry a few keywords: look only at those present, in a fixed order (so errors are the same).
    if "type" in node:
        _check_type(node["type"], join(path, "type"))
    if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
        raise SchemaError(join(path, "enum"), "enum must be a list with at least one value")
    if "required" in node and not _names(node["required"]):
        raise SchemaError(join(path, "required"), "required must be a list of property names (strings)")
    for name, needed in mapping(node, "dependentRequired", path).items():
        if not _names(needed):
            raise SchemaError(join(path, "dependentRequired", name), "must be a list of property names (strings)")
    numbers = [key for key in _NUMBER_KEYS if key in node]
    if numbers:
        _check_numbers(node, path, numbers)
    for low_key, high_key in _COUNT_PAIRS:
        if low_key in node or high_key in node:
            _check_counts(node, path, low_key, high_key)
    if not isinstance(node.get("uniqueItems", False), bool):
        raise SchemaError(join(path, "uniqueItems"), "uniqueItems must be true or false")
    if "pattern" in node:
        check_pattern(node["pattern"], join(path, "pattern"))
    for key in mapping(node, "patternProperties", path):
        check_pattern(key, join(path, "patternProperties", key))


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _check_numbers(node: Mapping[str, Any], path: str, keys: list[str]) -> None:
    for key in keys:
        value = node[key]
        if not (is_number(value) or (key.startswith("exclusive") and isinstance(value, bool))):
            raise SchemaError(join(path, key), f"{key} must be a number, got {kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(join(path, key), f"{key} must be finite")
    if node.get("multipleOf", 1) <= 0:
        raise SchemaError(join(path, "multipleOf"), "multipleOf must be greater than 0")
    low, low_strict, high, high_strict = number_bounds(node)
    if low is not None and high is not None and (low > high or (low == high and (low_strict or high_strict))):
        raise SchemaError(join(path, "minimum"), f"no number lies between the lower bound {low} and the upper {high}")


def _check_counts(node: Mapping[str, Any], path: str, low_key: str, high_key: str) -> None:
    for key in (low_key, high_key):
        count = node.get(key, 0)
        if not (is_number(count) and count >= 0 and (isinstance(count, int) or count.is_integer())):
            raise SchemaError(join(path, key), f"{key} must be a whole number of at least 0, got {count!r}")
    low, high = node.get(low_key, 0), node.get(high_key)
    if low > MAX_COUNT:
        raise SchemaError(join(path, low_key), f"{low_key} over {MAX_COUNT} is more than this simulator makes")
    if high is not None and low > high:
        raise SchemaError(join(path, low_key), f"{low_key} {low} is greater than {high_key} {high}")


def _check_type(declared: object, path: str) -> None:
    names = declared if isinstance(declared, list) else [declared]
    if not names:
        raise SchemaError(path, f"type must not be an empty list; use one or more of {', '.join(TYPES)}")
    for name in names:
        if name in TYPES:
            continue
        close = difflib.get_close_matches(name, TYPES, n=1) if isinstance(name, str) else []
        hint = f'did you mean "{close[0]}"? ' if close else ""
        shown = f'"{name}"' if isinstance(name, str) else kind(name)
        raise SchemaError(path, f"unknown type {shown}; {hint}types are {', '.join(TYPES)}")


def check_pattern(pattern: object, path: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaError(path, f"a pattern must be a string, got {kind(pattern)}")
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as error:
        raise SchemaError(path, f"{pattern!r} is not a regular expression Python's re accepts: {error}") from error
