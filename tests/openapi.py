"""Validate what the server returns against OpenAI's published OpenAPI schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).parent / "schemas" / "openai-components.json"
URI = "urn:openai-openapi"


@cache
def _registry() -> Registry[Any]:
    document = orjson.loads(DOCUMENT.read_bytes())
    return Registry().with_resource(URI, Resource.from_contents(document, default_specification=DRAFT202012))


@cache
def validator(schema_name: str) -> Draft202012Validator:
    schema = {"$ref": f"{URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


def assert_valid(schema_name: str, instance: Any) -> None:
    """Fail with every violation listed when ``instance`` does not match ``schema_name``."""
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{schema_name}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:5]
    )
