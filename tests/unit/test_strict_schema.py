"""OpenAI's strict-mode rules for JSON schemas: what is refused, in its words, and what is adopted."""

from typing import Any

import pytest

from sim.strict_schema import strict_normalized, strict_problem

ADDRESS = {
    "type": "object",
    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
    "required": ["street", "city"],
    "additionalProperties": False,
}


def person(address: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"type": "string"}, "address": address},
        "required": ["name", "address"],
        "additionalProperties": False,
    }


def test_a_closed_fully_required_schema_is_accepted() -> None:
    assert strict_problem(person(ADDRESS)) is None
    assert strict_problem({"type": "object", "properties": {}, "additionalProperties": False}) is None


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "string"}, "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"string\"'."),
        ({"properties": {}}, "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'."),
        (
            person({**ADDRESS, "additionalProperties": True}),
            "In context=('properties', 'address'), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            person({**ADDRESS, "required": ["street"]}),
            "In context=('properties', 'address'), 'required' is required to be supplied and to be an array "
            "including every key in properties. Missing 'city'.",
        ),
        (
            {**person(ADDRESS), "required": ["name", "address", "age"]},
            "In context=(), 'required' is required to be supplied and to be an array including every key in "
            "properties. Extra required key 'age' supplied.",
        ),
        (
            person({"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}]}),
            "In context=('properties', 'address', 'anyOf', '0'), 'additionalProperties' is required to be supplied "
            "and to be false.",
        ),
        (
            {**person(ADDRESS), "$defs": {"Tag": {"type": "object", "properties": {"x": {"type": "string"}}}}},
            "In context=('$defs', 'Tag'), 'additionalProperties' is required to be supplied and to be false.",
        ),
    ],
)
def test_refusals_name_the_node(schema: dict[str, Any], problem: str) -> None:
    assert strict_problem(schema) == problem


def test_normalisation_closes_objects_and_requires_every_property() -> None:
    loose = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
        },
    }
    normalised = strict_normalized(loose)
    assert normalised is not None and strict_problem(normalised) is None
    assert normalised["required"] == ["name", "tags"]
    assert normalised["properties"]["tags"]["items"]["required"] == ["k"]
    assert "additionalProperties" not in loose  # the client's schema is left as sent


def test_open_objects_and_non_object_roots_cannot_be_made_strict() -> None:
    assert strict_normalized({"type": "array", "items": {}}) is None
    assert strict_normalized(person({**ADDRESS, "additionalProperties": {"type": "string"}})) is None
