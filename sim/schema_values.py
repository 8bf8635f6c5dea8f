"""JSON values for JSON Schemas: tool-call arguments and structured outputs.

Theory of operation: :func:`value_for` first checks the whole schema
(:mod:`sim.schema_check`), so a bad schema fails on every request with the same
path, then walks it with one random stream. At each subschema the applicators
are *flattened* into one plain schema: ``$ref`` is replaced by its target,
``allOf`` branches are merged keyword by keyword (bounds tightened, types and
enums intersected, property schemas combined) and one ``anyOf``/``oneOf``
branch is drawn and merged in. The flat schema then yields its ``const``, a
member of its ``enum`` or a value of one of its types; strings and numbers come
from :mod:`sim.schema_strings` and :mod:`sim.schema_numbers`. The branches
``oneOf`` did not draw, and ``not``, are *exclusions*: the value is drawn again,
a few times, until a cheap check proves it fails each of them (best effort:
the check only reads types, constants, enums and required properties).

Recursion is bounded by the value's depth: from SOFT_DEPTH on, the walk makes
the smallest choices (optional properties left out, fewest items, null or
reference-free branches); a schema that still nests past HARD_DEPTH has no
finite value, and one that needs over MAX_VALUES values is refused: both raise
:class:`SchemaError`. A value depends only on the schema and the stream.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from fractions import Fraction
from math import lcm
from typing import Any

from sim.schema_check import TYPES, SchemaError, check_schema, declared_types, is_number, is_type, join, resolve
from sim.schema_numbers import number_value
from sim.schema_strings import StringWriter

__all__ = ["SchemaError", "value_for"]

SOFT_DEPTH = 4
HARD_DEPTH = 32
MAX_VALUES = 10_000
# $ref/allOf expansions within one subschema: more means references that loop without adding a type.
MAX_EXPANSIONS = 1_000
EXCLUSION_ATTEMPTS = 4
UNIQUE_ATTEMPTS = 8
# Share of draws that pick null where null is one choice among others (Optional fields).
NULL_SHARE = 0.25
OPTIONAL_SHARE = 0.5

# Nodes looked at to see whether a branch refers on (a branch too big to look through counts as one that does).
_REF_LOOKS = 200
_ANNOTATIONS = frozenset({"description", "default", "examples", "$defs", "definitions", "$schema", "$id", "$comment"})
_LOWER = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"})
_UPPER = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"})
_BOUNDS = _LOWER | _UPPER
_SUBSCHEMAS = frozenset(
    {"items", "additionalProperties", "additionalItems", "contains", "propertyNames", "unevaluatedProperties"}
)
_TYPE_ONLY = frozenset({"type", "title", "description"})
_INFERRED = (
    ("object", ("properties", "required", "additionalProperties", "patternProperties", "minProperties")),
    ("array", ("items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems")),
    ("string", ("minLength", "maxLength", "pattern", "format")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
)


def value_for(schema: Mapping[str, Any], rand: random.Random) -> Any:
    """A JSON value that validates against ``schema``; deterministic for a given ``rand`` state.

    Raises :class:`SchemaError` (and nothing else) for a schema no value can be made for.
    """
    try:
        check_schema(schema)
        return _Walk(schema, rand).value(schema, "", 0, None)
    except RecursionError as error:
        raise SchemaError("", "schema is nested too deeply to generate a value for") from error


class _Walk:
    """One value's generation: the document root (for ``$ref``), the stream and a count of values made."""

    def __init__(self, root: Mapping[str, Any], rand: random.Random) -> None:
        self.root = root
        self.rand = rand
        self.strings = StringWriter(rand)
        self.made = 0
        self.drew = False  # whether the last flatten drew an anyOf/oneOf branch

    def value(self, schema: Any, path: str, depth: int, name: str | None) -> Any:
        self.made += 1
        if self.made > MAX_VALUES:
            raise SchemaError(path, f"schema needs more than {MAX_VALUES} values; lower minItems or nesting")
        if depth > HARD_DEPTH:
            raise SchemaError(path, f"values nest over {HARD_DEPTH} deep here: make the recursion optional")
        overlapping: set[int] = set()
        for attempt in range(EXCLUSION_ATTEMPTS):
            try:
                flat, home, exclusions = self.flatten(schema, path, depth, overlapping)
            except SchemaError:  # a drawn branch may contradict the rest where another would not
                if not self.drew or attempt + 1 == EXCLUSION_ATTEMPTS:
                    raise
                continue
            value = self.build(flat, home, depth, name, _banned_types(exclusions))
            # A oneOf branch that also took the value is the one to draw next: its own values may not fit the first.
            overlapping = {id(other) for other in exclusions if not self.fails(value, other, 0)}
            if not overlapping:
                return value
        return value

    def flatten(self, schema: Any, path: str, depth: int, prefer: set[int]) -> tuple[dict[str, Any], str, list[Any]]:
        """``schema`` as one plain schema, the path its type came from, and the schemas to avoid."""
        flat: dict[str, Any] = {}
        home: str | None = None
        typed, exclusions = False, list[Any]()
        self.drew = False
        pending = [(schema, path)]
        for _ in range(MAX_EXPANSIONS):
            if not pending:
                return flat, home if home is not None else path, exclusions
            node, at = pending.pop()
            if node is False:
                raise SchemaError(at, "this subschema is false: no value satisfies it")
            plain: dict[str, Any] = {}
            for key, sub in node.items() if node is not True else ():
                if key == "$ref":
                    pending.append(resolve(self.root, sub, at))
                elif key == "allOf":
                    pending.extend((branch, join(at, key, index)) for index, branch in enumerate(sub))
                elif key in ("anyOf", "oneOf"):
                    self.drew = True
                    preferred = [i for i, branch in enumerate(sub) if id(branch) in prefer]
                    index = self.rand.choice(preferred) if preferred else self.choose(sub, depth)
                    pending.append((sub[index], join(at, key, index)))
                    exclusions += [other for i, other in enumerate(sub) if i != index and key == "oneOf"]
                elif key == "not":
                    if sub is True or (isinstance(sub, Mapping) and sub.keys() <= _ANNOTATIONS | {"title"}):
                        raise SchemaError(join(at, "not"), "not: {} (or true) rules out every value")
                    exclusions.append(sub)
                elif key not in _ANNOTATIONS:
                    plain[key] = sub
            if plain and (home is None or ("type" in plain and not typed)):
                home, typed = at, "type" in plain
            _merge(flat, plain, at)
        raise SchemaError(path, "$ref and allOf expand here without end: a reference cycle that never reaches a type")

    def choose(self, branches: list[Any], depth: int) -> int:
        """A branch index: past SOFT_DEPTH the most final branch, else any, null ones less often."""
        if depth >= SOFT_DEPTH:
            ranks = [_finality(branch) for branch in branches]
            return self.rand.choice([i for i, rank in enumerate(ranks) if rank == min(ranks)])
        nulls = [i for i, branch in enumerate(branches) if isinstance(branch, Mapping) and branch.get("type") == "null"]
        others = [i for i in range(len(branches)) if i not in nulls]
        if nulls and others:
            return self.rand.choice(nulls if self.rand.random() < NULL_SHARE else others)
        return self.rand.randrange(len(branches))

    def build(self, flat: dict[str, Any], home: str, depth: int, name: str | None, banned: set[str]) -> Any:
        types = declared_types(flat.get("type"))
        if "const" in flat:
            if types and not any(is_type(flat["const"], kind) for kind in types):
                raise SchemaError(join(home, "const"), f"const {flat['const']!r} is not of type {' or '.join(types)}")
            return flat["const"]
        if "enum" in flat:
            allowed = [item for item in flat["enum"] if not types or any(is_type(item, kind) for kind in types)]
            if not allowed:
                raise SchemaError(join(home, "enum"), f"no enum value is of type {' or '.join(types)}")
            return self.rand.choice(allowed)
        if not types:
            types = [kind for kind, keys in _INFERRED if any(key in flat for key in keys)][:1]
        if not types:  # anything goes: words, unless an exclusion rules them out
            types = ["string"] if "string" not in banned else list(TYPES)
        types = [kind for kind in types if kind not in banned] or types
        others = [kind for kind in types if kind != "null"]
        if len(others) < len(types) and (not others or depth >= SOFT_DEPTH or self.rand.random() < NULL_SHARE):
            kind = "null"
        else:
            kind = others[0] if len(others) == 1 else self.rand.choice(others)
        if kind == "object":
            return self.object(flat, home, depth)
        if kind == "array":
            return self.array(flat, home, depth, name)
        if kind == "string":
            return self.strings.string(flat, home, name or _title(flat))
        if kind in ("number", "integer"):
            return number_value(flat, home, integer=kind == "integer", name=name or _title(flat), rand=self.rand)
        return self.rand.random() < 0.5 if kind == "boolean" else None

    def object(self, flat: dict[str, Any], home: str, depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = flat.get("properties", {})
        required = list(dict.fromkeys(flat.get("required", [])))
        least, most = int(flat.get("minProperties", 0)), flat.get("maxProperties")
        if most is not None and max(len(required), least) > most:
            message = f"{max(len(required), least)} properties are needed but maxProperties is {most}"
            raise SchemaError(join(home, "maxProperties"), message)
        optional = [key for key in properties if key not in required]
        chosen = [key for key in optional if depth < SOFT_DEPTH and self.rand.random() < OPTIONAL_SHARE]
        chosen += [key for key in optional if key not in chosen][: max(0, least - len(required) - len(chosen))]
        dependents: Mapping[str, list[str]] = flat.get("dependentRequired", {})
        names = list(dict.fromkeys([*required, *chosen]))
        for key in names:  # grows while iterated: a dependent may have dependents of its own
            names += [other for other in dependents.get(key, []) if other not in names]
        if most is not None and len(names) > most:
            names = required + [key for key in names if key not in required][: int(most) - len(required)]
        order = {key: index for index, key in enumerate(properties)}
        names.sort(key=lambda key: order.get(key, len(order)))
        result = {key: self.member(flat, home, key, depth) for key in names}
        for _ in range(4 * (least - len(result))):
            key = self.extra_name(flat, home)
            if key not in result and key not in properties and len(result) < least:
                result[key] = self.member(flat, home, key, depth)
        if len(result) < least:
            raise SchemaError(join(home, "minProperties"), f"cannot make {least} properties: too few are allowed")
        return result

    def member(self, flat: dict[str, Any], home: str, key: str, depth: int) -> Any:
        """A value for the property ``key``, valid for its schema and every patternProperties one it matches."""
        listed = key in flat.get("properties", {})
        schemas = [flat["properties"][key]] if listed else []
        schemas += [sub for pattern, sub in flat.get("patternProperties", {}).items() if re.search(pattern, key)]
        extra = flat.get("additionalProperties", True)
        if not schemas and (extra is False or flat.get("unevaluatedProperties") is False):
            raise SchemaError(join(home, "required"), f"property {key!r} is required but additionalProperties is false")
        schema = schemas[0] if len(schemas) == 1 else {"allOf": schemas} if schemas else extra
        where = join(home, "properties", key) if listed else join(home, "additionalProperties")
        return self.value(schema, where, depth + 1, key)

    def extra_name(self, flat: dict[str, Any], home: str) -> str:
        """A name for a property beyond those listed (to reach minProperties)."""
        patterns = list(flat.get("patternProperties", {}))
        if patterns:
            pattern = self.rand.choice(patterns)
            where = join(home, "patternProperties", pattern)
            try:  # a few characters more than the pattern needs, so that names differ
                return self.strings.matching(pattern, where, self.rand.randint(3, 10))
            except SchemaError:
                return self.strings.matching(pattern, where)
        if flat.get("additionalProperties", True) is False or flat.get("unevaluatedProperties") is False:
            raise SchemaError(
                join(home, "minProperties"), "needs more properties than additionalProperties: false allows"
            )
        return self.strings.words(1)

    def array(self, flat: dict[str, Any], home: str, depth: int, name: str | None) -> list[Any]:
        prefix, items = flat.get("prefixItems", []), flat.get("items", True)
        if isinstance(items, list):  # draft 7 tuples
            prefix, items = items, flat.get("additionalItems", True)
        least, most = int(flat.get("minItems", 0)), flat.get("maxItems")
        if items is False:
            most = len(prefix) if most is None else min(int(most), len(prefix))
        contains = flat.get("contains")
        needed = int(flat.get("minContains", 1)) if contains is not None else 0
        least = max(least, needed)
        if most is not None and least > most:
            raise SchemaError(join(home, "minItems"), f"needs {least} items but at most {most} are allowed")
        if depth >= SOFT_DEPTH:
            count = least
        else:
            usual = max(least, 1) + 2
            count = self.rand.randint(least, usual if most is None else min(usual, int(most)))
        holders = set(self.rand.sample(range(count), needed))
        unique, seen = flat.get("uniqueItems") is True, set[Any]()
        result: list[Any] = []
        for index in range(count):
            schema = prefix[index] if index < len(prefix) else items
            where = join(home, "prefixItems", index) if index < len(prefix) else join(home, "items")
            schema = {"allOf": [schema, contains]} if index in holders else schema
            item = self.value(schema, where, depth + 1, name)
            for _ in range(UNIQUE_ATTEMPTS if unique and _key(item) in seen else 0):
                item = self.value(schema, where, depth + 1, name)
                if _key(item) not in seen:
                    break
            if unique and _key(item) in seen:
                if len(result) >= least:
                    break
                raise SchemaError(join(home, "uniqueItems"), f"could not make {least} distinct items")
            seen.add(_key(item) if unique else None)
            result.append(item)
        return result

    def fails(self, value: Any, schema: Any, depth: int) -> bool:
        """Whether ``value`` surely fails ``schema``; ``False`` means only "not shown to"."""
        if schema is False:
            return True
        if not isinstance(schema, Mapping) or depth > SOFT_DEPTH:
            return False
        if "$ref" in schema:
            target, _ = resolve(self.root, schema["$ref"], "")
            if self.fails(value, target, depth + 1):
                return True
        types = declared_types(schema.get("type"))
        if types and not any(is_type(value, kind) for kind in types):
            return True
        if "const" in schema and _key(schema["const"]) != _key(value):
            return True
        if "enum" in schema and _key(value) not in {_key(item) for item in schema["enum"]}:
            return True
        if isinstance(value, dict):
            if any(key not in value for key in schema.get("required", [])):
                return True
            properties = schema.get("properties", {})
            if any(key in value and self.fails(value[key], sub, depth + 1) for key, sub in properties.items()):
                return True
        if any(self.fails(value, branch, depth + 1) for branch in schema.get("allOf", [])):
            return True
        return "anyOf" in schema and all(self.fails(value, branch, depth + 1) for branch in schema["anyOf"])


def _merge(flat: dict[str, Any], extra: Mapping[str, Any], path: str) -> None:
    """Merge ``extra``'s keywords into ``flat`` so that a value must satisfy both."""
    for key, new in extra.items():
        old: Any = flat.get(key)
        if key not in flat:
            flat[key] = new
        elif key in _BOUNDS and is_number(old) and is_number(new):
            flat[key] = max(old, new) if key in _LOWER else min(old, new)
        elif key == "type":
            common = _common_types(declared_types(old), declared_types(new))
            if not common:
                raise SchemaError(join(path, "type"), f"allOf needs a value of types {old!r} and {new!r} at once")
            flat[key] = common
        elif key == "required":
            flat[key] = list(dict.fromkeys([*old, *new]))
        elif key == "enum":
            flat[key] = [item for item in old if _key(item) in {_key(other) for other in new}]
            if not flat[key]:
                raise SchemaError(join(path, "enum"), "allOf branches share no enum value")
        elif key == "const" and _key(old) != _key(new):
            raise SchemaError(join(path, "const"), f"allOf needs both const {old!r} and const {new!r}")
        elif key in ("properties", "patternProperties") and isinstance(old, Mapping):
            flat[key] = {**old, **{name: _both(old.get(name, True), sub) for name, sub in new.items()}}
        elif key in _SUBSCHEMAS and not isinstance(old, list) and not isinstance(new, list):
            flat[key] = _both(old, new)
        elif key == "prefixItems":
            flat[key] = [_both(*pair) for pair in zip(old, new, strict=False)] + old[len(new) :] + new[len(old) :]
        elif key == "pattern":  # a string must match each: kept as a list, generated from the first
            flat[key] = [*_listed(old), *_listed(new)]
        elif key == "multipleOf":
            flat[key] = _common_multiple(old, new)
        elif key == "uniqueItems":
            flat[key] = old or new
        else:
            flat[key] = new


def _both(first: Any, second: Any) -> Any:
    """A schema for values valid under both."""
    if first is False or second is False:
        return False
    return second if first is True else first if second is True else {"allOf": [first, second]}


def _common_multiple(first: int | float, second: int | float) -> int | float:
    a, b = (Fraction(repr(x)) if isinstance(x, float) else Fraction(x) for x in (first, second))
    common = Fraction(lcm(a.numerator * b.denominator, b.numerator * a.denominator), a.denominator * b.denominator)
    if common.denominator == 1:
        return int(common)
    try:
        return float(common)
    except OverflowError:
        return second


def _common_types(first: list[str], second: list[str]) -> list[str]:
    common = [kind for kind in first if kind in second]
    if "integer" not in common and {"integer", "number"} <= {*first, *second} - {*common}:
        common.append("integer")  # every integer is a number
    return common


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _banned_types(exclusions: list[Any]) -> set[str]:
    """The types that exclusions rule out whole (``not: {type: string}``)."""
    return {
        kind
        for other in exclusions
        if isinstance(other, Mapping) and other.keys() <= _TYPE_ONLY
        for kind in declared_types(other.get("type"))
    }


def _finality(branch: Any) -> int:
    """0 for a branch that may be null, 1 for one without a ``$ref`` in sight, 2 for one that may recurse."""
    if isinstance(branch, Mapping) and "null" in declared_types(branch.get("type")):
        return 0
    pending, looked = [branch], 0
    while pending and looked < _REF_LOOKS:
        node = pending.pop()
        looked += 1
        if isinstance(node, Mapping):
            if "$ref" in node:
                return 2
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return 1 if not pending else 2


def _title(flat: Mapping[str, Any]) -> str | None:
    title = flat.get("title")
    return title if isinstance(title, str) else None


def _key(value: Any) -> Any:
    """A hashable stand-in equal for equal JSON values (1 == 1.0, but true != 1)."""
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, list):
        return ("array", tuple(map(_key, value)))
    if isinstance(value, Mapping):
        return ("object", frozenset((key, _key(item)) for key, item in value.items()))
    return ("scalar", value) if isinstance(value, int | float | str) else ("other", repr(value))
