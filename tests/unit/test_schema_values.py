"""JSON Schema value generation: every value validates, with the schemas real clients send."""

from __future__ import annotations

import datetime
import enum
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import urllib.parse
import uuid
from typing import Annotated, Any, Literal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import AnyUrl, BaseModel, Field

from sim.schema_values import SchemaError, value_for

SEEDS = range(150)

# The installed jsonschema checks some formats only with optional packages; these stand in for them.
FORMATS = FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(
    lambda text: not isinstance(text, str) or bool(datetime.datetime.fromisoformat(text))
)
FORMATS.checks("time", raises=ValueError)(
    lambda text: not isinstance(text, str) or bool(re.fullmatch(r"\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text))
)
FORMATS.checks("duration")(
    lambda text: not isinstance(text, str) or bool(re.fullmatch(r"P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?", text))
)
FORMATS.checks("uri")(lambda text: not isinstance(text, str) or bool(urllib.parse.urlsplit(text).scheme))
FORMATS.checks("hostname")(
    lambda text: (
        not isinstance(text, str)
        or bool(re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}", text, re.I))
    )
)


def assert_valid(schema: Any, value: Any) -> None:
    Draft202012Validator(schema, format_checker=FORMATS).validate(value)
    assert orjson.loads(orjson.dumps(value)) == value  # plain JSON, nothing else


# --- what clients send -------------------------------------------------------------------------------

GET_WEATHER = {  # OpenAI function-calling docs
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}
MATH_REASONING = {  # OpenAI structured outputs, strict: everything required, nothing extra
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                "required": ["explanation", "output"],
                "additionalProperties": False,
            },
        },
        "final_answer": {"type": "string"},
        "confidence": {"type": ["number", "null"]},
    },
    "required": ["steps", "final_answer", "confidence"],
    "additionalProperties": False,
}
UI_COMPONENT = {  # OpenAI structured outputs: recursion through "#"
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["div", "button", "header", "section", "field", "form"]},
        "label": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
        "attributes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                "required": ["name", "value"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["type", "label", "children", "attributes"],
    "additionalProperties": False,
}
LINKED_LIST = {  # OpenAI structured outputs: recursion through $defs, ended by null
    "type": "object",
    "properties": {"linked_list": {"$ref": "#/$defs/linked_list_node"}},
    "$defs": {
        "linked_list_node": {
            "type": "object",
            "properties": {
                "value": {"type": "number"},
                "next": {"anyOf": [{"$ref": "#/$defs/linked_list_node"}, {"type": "null"}]},
            },
            "additionalProperties": False,
            "required": ["next", "value"],
        }
    },
    "additionalProperties": False,
    "required": ["linked_list"],
}
STOCK_PRICE = {  # Anthropic tool use docs
    "type": "object",
    "properties": {"ticker": {"type": "string", "description": "The stock ticker symbol, e.g. AAPL for Apple Inc."}},
    "required": ["ticker"],
}
ZOD_USER = {  # zod-to-json-schema output: draft 07, definitions, nullable as a type list
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$ref": "#/definitions/User",
    "definitions": {
        "User": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "age": {"type": "integer", "exclusiveMinimum": 0, "maximum": 130},
                "email": {"type": "string", "format": "email"},
                "nickname": {"type": ["string", "null"]},
                "role": {"type": "string", "enum": ["admin", "user"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "scores": {"type": "object", "additionalProperties": {"type": "number"}, "minProperties": 1},
                "friend": {"$ref": "#/definitions/User/properties/name"},
            },
            "required": ["name", "age", "email", "role", "scores"],
            "additionalProperties": False,
        }
    },
}
NUMBERS = {
    "type": "object",
    "properties": {
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "tiny": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.0001},
        "step": {"type": "integer", "multipleOf": 5, "minimum": -20, "maximum": 20},
        "price": {"type": "number", "multipleOf": 0.01, "minimum": 0.5, "maximum": 99.99},
        "quarter": {"type": "number", "multipleOf": 0.25},
        "big": {"type": "integer", "minimum": 10**30},
        "negative": {"type": "integer", "maximum": -1000},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
    },
    "required": ["ratio", "tiny", "step", "price", "quarter", "big", "negative", "latitude"],
}
FORMATTED = {
    "type": "object",
    "properties": {
        name: {"type": "string", "format": name}
        for name in ("date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname", "duration")
    },
    "required": ["date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname", "duration"],
}
PATTERNS = {
    "type": "object",
    "properties": {
        "zip": {"type": "string", "pattern": r"^\d{5}(-\d{4})?$"},
        "sku": {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
        "phone": {"type": "string", "pattern": r"^\+?[1-9]\d{1,14}$"},
        "slug": {"type": "string", "pattern": r"^[a-z0-9]+(?:-[a-z0-9]+)*$", "minLength": 12, "maxLength": 20},
        "contains_ab": {"type": "string", "pattern": "ab", "minLength": 8},
        "hex": {"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$"},
        "not_space": {"type": "string", "pattern": r"^[^\s,]{4,8}$"},
    },
    "required": ["zip", "sku", "phone", "slug", "contains_ab", "hex", "not_space"],
}
ARRAYS = {
    "type": "object",
    "properties": {
        "few": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
        "exactly": {"type": "array", "items": {"type": "string"}, "minItems": 5, "maxItems": 5},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        "distinct": {"type": "array", "items": {"enum": ["a", "b", "c", 1]}, "uniqueItems": True, "minItems": 3},
        "has_big": {"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 1000}},
        "cities": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["few", "exactly", "pair", "distinct", "has_big", "cities"],
}
COMBINED = {
    "type": "object",
    "properties": {
        "merged": {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]},
                {"properties": {"a": {"maximum": 3}, "b": {"type": "string", "maxLength": 4}}, "required": ["b"]},
            ]
        },
        "either": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 2}]},
        "overlapping": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
        "tagged": {
            "oneOf": [
                {"properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind"]},
                {"properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind"]},
            ]
        },
        "two_patterns": {"allOf": [{"type": "string", "pattern": "^[a-z0-9]+$", "minLength": 6}, {"pattern": "[0-9]"}]},
        "not_a_string": {"type": ["string", "integer", "null"], "not": {"type": "string"}},
        "anything": {},
        "true": True,
        "sized": {"additionalProperties": {"type": "boolean"}, "minProperties": 2, "maxProperties": 3},
        "patterned": {"type": "object", "patternProperties": {"^x-[a-z]+$": {"type": "integer"}}, "minProperties": 1},
        "dependent": {
            "type": "object",
            "properties": {"card": {"type": "string"}, "billing": {"type": "string"}},
            "dependentRequired": {"card": ["billing"]},
        },
        "untyped_object": {"properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}
COMBINED["required"] = list(COMBINED["properties"])


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    city: str
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$")]
    country: Literal["US", "CA"] = "US"


class Item(BaseModel):
    sku: str
    quantity: Annotated[int, Field(ge=1, le=100)]
    price: Annotated[float, Field(gt=0, lt=10_000)]
    discount: float | None = None  # not Decimal: its schema allows any string, pydantic only numeric ones


class Order(BaseModel):
    id: uuid.UUID
    created_at: datetime.datetime
    deliver_on: datetime.date
    window_start: datetime.time
    eta: datetime.timedelta
    ship_to: Address
    bill_to: Address | None = None
    items: Annotated[list[Item], Field(min_length=1, max_length=5)]
    color: Color
    labels: set[str] = set()
    note: str | None = None
    website: AnyUrl | None = None
    server: ipaddress.IPv4Address | None = None
    dimensions: tuple[float, float, float] | None = None
    status: Literal["open", "shipped", "closed"]


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Owner(BaseModel):
    name: str
    pet: Cat | Dog = Field(discriminator="pet_type")


MODELS: list[type[BaseModel]] = [Order, Tree, Owner]
CORPUS: dict[str, Any] = {
    "get_weather": GET_WEATHER,
    "math_reasoning": MATH_REASONING,
    "ui_component": UI_COMPONENT,
    "linked_list": LINKED_LIST,
    "stock_price": STOCK_PRICE,
    "zod_user": ZOD_USER,
    "numbers": NUMBERS,
    "formatted": FORMATTED,
    "patterns": PATTERNS,
    "arrays": ARRAYS,
    "combined": COMBINED,
    **{model.__name__: model.model_json_schema() for model in MODELS},
}


@pytest.mark.parametrize("name", CORPUS)
def test_every_value_validates(name: str) -> None:
    schema = CORPUS[name]
    for seed in SEEDS:
        assert_valid(schema, value_for(schema, random.Random(seed)))


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_pydantic_accepts_the_values_for_its_own_schema(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for seed in SEEDS:
        model.model_validate(value_for(schema, random.Random(seed)))


def test_required_properties_always_and_optional_ones_sometimes() -> None:
    values = [value_for(GET_WEATHER, random.Random(seed)) for seed in SEEDS]
    assert all("location" in value for value in values)
    with_unit = sum("unit" in value for value in values)
    assert len(values) / 4 < with_unit < len(values) * 3 / 4


def test_strings_follow_property_names() -> None:
    schema = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in ("email", "user_id", "description", "city", "unit")},
        "required": ["email", "user_id", "description", "city", "unit"],
    }
    value = value_for(schema, random.Random(7))
    assert "@" in value["email"]
    assert uuid.UUID(value["user_id"])
    assert value["description"].endswith(".") and len(value["description"].split()) >= 4
    assert value["city"][0].isupper()
    assert value["unit"] in ("celsius", "fahrenheit", "metric", "imperial")


def test_length_limits_hold_for_named_and_formatted_strings() -> None:
    for schema in (
        {"type": "string", "minLength": 30, "maxLength": 31, "title": "City"},
        {"type": "string", "minLength": 200},
        {"type": "string", "format": "email", "maxLength": 40},
    ):
        for seed in range(30):
            assert_valid(schema, value_for(schema, random.Random(seed)))


def test_length_limits_win_over_formats() -> None:
    # A format only annotates unless a validator opts in; lengths always assert.
    for seed in range(30):
        assert len(value_for({"type": "string", "format": "uuid", "maxLength": 8}, random.Random(seed))) <= 8


def test_recursion_stops_and_still_nests_sometimes() -> None:
    schema = Tree.model_json_schema()
    depths = []
    for seed in SEEDS:
        value, depth = value_for(schema, random.Random(seed)), 0
        while value["children"] if "children" in value else False:
            value, depth = value["children"][0], depth + 1
        depths.append(depth)
    assert max(depths) >= 2
    assert max(depths) <= 4


# --- determinism and variety --------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS)
def test_same_seed_gives_the_same_value(name: str) -> None:
    schema = CORPUS[name]
    assert value_for(schema, random.Random(42)) == value_for(schema, random.Random(42))


@pytest.mark.parametrize("name", ["get_weather", "numbers", "formatted", "patterns", "Order"])
def test_different_seeds_give_different_values(name: str) -> None:
    schema = CORPUS[name]
    values = {orjson.dumps(value_for(schema, random.Random(seed))) for seed in range(20)}
    assert len(values) >= 18


def test_values_do_not_depend_on_the_process() -> None:
    names = ["get_weather", "zod_user", "combined", "Order"]
    script = (
        "import json, random, sys\n"
        "from sim.schema_values import value_for\n"
        "schemas = json.loads(sys.stdin.read())\n"
        "print(json.dumps([value_for(schema, random.Random(5)) for schema in schemas]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    schemas = [CORPUS[name] for name in names]
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(schemas), capture_output=True, text=True, env=env, check=True
    )
    here = [value_for(schema, random.Random(5)) for schema in schemas]
    assert json.loads(done.stdout) == json.loads(json.dumps(here))


# --- bad schemas --------------------------------------------------------------------------------------

BAD = [
    ({"type": "objet"}, "type", 'did you mean "object"'),
    ({"type": "object", "properties": {"location": {"type": "strin"}}}, "properties.location.type", "strin"),
    ({"$ref": "#/$defs/Missing", "$defs": {}}, "$ref", "Missing"),
    ({"properties": {"a": {"$ref": "other.json#/x"}}}, "properties.a.$ref", "not a local reference"),
    ({"type": "integer", "minimum": 10, "maximum": 1}, "minimum", "lower bound 10"),
    ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength", "greater than maxLength"),
    ({"type": "object", "properties": {"a": 5}}, "properties.a", "expected a schema"),
    ({"type": "array", "items": "string"}, "items", "expected a schema"),
    ({"enum": []}, "enum", "at least one value"),
    ({"anyOf": []}, "anyOf", "non-empty list"),
    ({"type": "string", "pattern": "([a-z]"}, "pattern", "not a regular expression"),
    ({"type": "number", "multipleOf": 0}, "multipleOf", "greater than 0"),
    ({"type": "integer", "minimum": 1.2, "maximum": 1.8}, "type", "no integer"),
    (
        {
            "properties": {"n": {"$ref": "#/$defs/N"}},
            "required": ["n"],
            "$defs": {"N": {"properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"]}},
        },
        "$defs.N.properties.n",
        "make the recursion optional",
    ),
    ({"$ref": "#"}, "", "without end"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "allOf", "at once"),
    ({"type": "object", "required": ["a"], "additionalProperties": False}, "required", "'a'"),
    ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "properties.a", "false"),
    ({"type": "array", "items": {"type": "boolean"}, "minItems": 3, "uniqueItems": True}, "uniqueItems", "distinct"),
    ({"type": "string", "minLength": 10**9}, "minLength", "more than"),
    ({"type": "string", "pattern": "^a$", "minLength": 2}, "pattern", "matches"),
    ({"type": "string", "pattern": r"^\ud800$"}, "pattern", "matches"),  # a lone surrogate cannot go into JSON
    ({"type": "object", "maxProperties": 1, "required": ["a", "b"]}, "maxProperties", "2 properties are needed"),
    ("not a schema", "", "expected a schema"),
]


@pytest.mark.parametrize(("schema", "path", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_schemas_say_where_and_what(schema: Any, path: str, words: str) -> None:
    with pytest.raises(SchemaError) as raised:
        for seed in range(5):
            value_for(schema, random.Random(seed))
    assert raised.value.path.startswith(path)
    assert words in raised.value.message


def test_a_typo_in_an_optional_property_fails_every_time() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "numbr"}}, "required": ["a"]}
    for seed in range(20):
        with pytest.raises(SchemaError, match=r"properties\.b\.type"):
            value_for(schema, random.Random(seed))


def test_errors_inside_a_definition_point_into_it() -> None:
    schema = {"$ref": "#/$defs/A", "$defs": {"A": {"type": "object", "properties": {"x": {"type": "nul"}}}}}
    with pytest.raises(SchemaError) as raised:
        value_for(schema, random.Random(0))
    assert raised.value.path == "$defs.A.properties.x.type"


# --- arbitrary input ----------------------------------------------------------------------------------

KEYWORDS = [
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf",
    "oneOf", "allOf", "not", "$ref", "$defs", "definitions", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems", "maxItems",
    "uniqueItems", "contains", "minContains", "minProperties", "maxProperties", "patternProperties",
    "dependentRequired", "additionalItems", "unevaluatedProperties", "title",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean", "strin", "#", "#/$defs/a"])
    | st.sampled_from(["date-time", "uuid", "^[a-z]+$", "(", "a{3}", "#/properties/a", "#/definitions/x/0"])
    | st.text(max_size=8)
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYWORDS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=ANY_JSON, seed=st.integers(0, 2**32))
def test_arbitrary_json_raises_nothing_but_schema_error(schema: Any, seed: int) -> None:
    try:
        value = value_for(schema, random.Random(seed))
    except SchemaError as error:
        assert error.message
        return
    orjson.dumps(value)


SMALL = st.integers(-50, 50)
LEAVES = st.one_of(
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span}, SMALL, st.integers(0, 9)),
    st.builds(
        lambda lo, m: {"type": "number", "exclusiveMinimum": lo, "multipleOf": m},
        SMALL,
        st.sampled_from([0.5, 0.1, 3, 0.01]),
    ),
    st.builds(
        lambda lo, hi: {"type": "string", "minLength": lo, "maxLength": lo + hi}, st.integers(0, 5), st.integers(0, 20)
    ),
    st.sampled_from([{"type": "string", "format": f} for f in ("date", "uuid", "email", "ipv4", "date-time")]),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"enum": [1, "a", None]}, {"const": {"k": [1]}}, {}]),
    st.sampled_from([{"type": "string", "pattern": p} for p in (r"^[A-Z]\d{2}$", r"^(ab|cd)+$", r"x")]),
)
VALID_SCHEMAS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(
            lambda props, n, closed: {
                "type": "object",
                "properties": props,
                "required": sorted(props)[:n],
                "additionalProperties": not closed,
            },
            st.dictionaries(st.sampled_from(["name", "city", "id", "a", "price", "when"]), inner, max_size=4),
            st.integers(0, 4),
            st.booleans(),
        ),
        st.builds(
            lambda items, lo, extra, unique: {
                "type": "array",
                "items": items,
                "minItems": lo,
                "maxItems": lo + extra,
                "uniqueItems": unique,
            },
            inner,
            st.integers(0, 3),
            st.integers(0, 3),
            st.booleans(),
        ),
        st.lists(inner, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
        st.builds(lambda a: {"type": ["string", "null"], "maxLength": a}, st.integers(1, 5)),
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=VALID_SCHEMAS, seed=st.integers(0, 2**32))
def test_values_validate_for_generated_schemas(schema: Any, seed: int) -> None:
    try:
        value = value_for(schema, random.Random(seed))
    except SchemaError as error:  # only where no value exists: distinct items from too few choices
        assert "distinct" in error.message
        return
    assert_valid(schema, value)
