"""OpenAI's strict mode for JSON schemas: the check that refuses a schema, and the normalisation that adopts one.

With ``strict: true`` (function tools, ``text.format`` of type ``json_schema``)
OpenAI refuses, with a 400, any schema whose object nodes do not all set
``additionalProperties: false`` and list every property in ``required``; the
message names the offending node as a tuple of path segments (``In
context=('properties', 'address'), ...``). The Responses API treats a function
tool that omits ``strict`` as strict when its schema can be made so: every
object gets ``additionalProperties: false`` and all its properties become
required (so the model fills every field); a schema that cannot (an open
object, a root that is not an object) stays non-strict.

Only the rules a client meets in practice are checked; keyword subsets
(``format`` values, ``pattern`` support) are not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_Path = tuple[str, ...]


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _children(node: Mapping[str, Any], path: _Path) -> Iterator[tuple[Mapping[str, Any], _Path]]:
    """Sub-schemas in the order OpenAI's validator visits them."""
    for keyword in ("properties", "$defs", "definitions"):
        members = node.get(keyword)
        if isinstance(members, Mapping):
            for name, child in members.items():
                if isinstance(child, Mapping):
                    yield child, (*path, keyword, str(name))
    items = node.get("items")
    if isinstance(items, Mapping):
        yield items, (*path, "items")
    for keyword in ("anyOf", "allOf", "oneOf"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            for index, child in enumerate(branches):
                if isinstance(child, Mapping):
                    yield child, (*path, keyword, str(index))


def _root_problem(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if kind != "object" or "anyOf" in schema:
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
    return None


def strict_problem(schema: Mapping[str, Any]) -> str | None:
    """Why OpenAI refuses ``schema`` in strict mode, in its words; ``None`` when it accepts it."""
    problem = _root_problem(schema)
    if problem:
        return problem
    pending: list[tuple[Mapping[str, Any], _Path]] = [(schema, ())]
    while pending:
        node, path = pending.pop(0)
        if _is_object(node):
            context = f"In context={path!r}, "
            if node.get("additionalProperties") is not False:
                return context + "'additionalProperties' is required to be supplied and to be false."
            properties = node.get("properties")
            keys = list(properties) if isinstance(properties, Mapping) else []
            required = node.get("required")
            listed = required if isinstance(required, list) else []
            missing = [key for key in keys if key not in listed]
            if missing:
                return (
                    context + "'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{missing[0]}'."
                )
            extra = [key for key in listed if key not in keys]
            if extra:
                return (
                    context + "'required' is required to be supplied and to be an array including every key in "
                    f"properties. Extra required key '{extra[0]}' supplied."
                )
        pending.extend(_children(node, path))
    return None


def strict_normalized(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """``schema`` made strict (closed objects, every property required), or ``None`` when it cannot be."""
    if _root_problem(schema):
        return None
    return _normalized(schema)


def _normalized(node: Mapping[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = dict(node)
    if _is_object(node):
        if node.get("additionalProperties", False) is not False:
            return None  # an open object cannot be closed without changing what it accepts
        out["additionalProperties"] = False
        properties = node.get("properties")
        out["required"] = list(properties) if isinstance(properties, Mapping) else []
    for keyword in ("properties", "$defs", "definitions"):
        members = node.get(keyword)
        if isinstance(members, Mapping):
            copied: dict[str, Any] = {}
            for name, child in members.items():
                fixed = _normalized(child) if isinstance(child, Mapping) else child
                if fixed is None:
                    return None
                copied[name] = fixed
            out[keyword] = copied
    items = node.get("items")
    if isinstance(items, Mapping):
        out["items"] = _normalized(items)
        if out["items"] is None:
            return None
    for keyword in ("anyOf", "allOf", "oneOf"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            fixed_branches = [_normalized(child) if isinstance(child, Mapping) else child for child in branches]
            if any(branch is None for branch in fixed_branches):
                return None
            out[keyword] = fixed_branches
    return out
