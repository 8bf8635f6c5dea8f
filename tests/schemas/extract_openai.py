"""Regenerate ``openai-components.json``: the part of OpenAI's OpenAPI document the tests validate against.

The full document (3.4 MB) sits beside the project in ``../shared/specs``; the
tests carry only the schemas they name and everything those reference, so a
clone tests the same way anywhere. Run: ``python tests/schemas/extract_openai.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "CreateEmbeddingResponse",
    "ImagesResponse",
    "Response",
    "ResponseStreamEvent",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
)
HERE = Path(__file__).parent
SOURCE = HERE.parents[2] / "shared" / "specs" / "openai-openapi.json"
TARGET = HERE / "openai-components.json"
PREFIX = "#/components/schemas/"


def references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            found.add(ref[len(PREFIX) :])
        for value in node.values():
            found |= references(value)
    elif isinstance(node, list):
        for value in node:
            found |= references(value)
    return found


def honour_nullable(node: Any) -> Any:
    """The document still marks some fields ``nullable: true`` (OpenAPI 3.0 style), which
    JSON Schema ignores; the API sends ``null`` there, so say it in JSON Schema terms."""
    if isinstance(node, list):
        return [honour_nullable(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: honour_nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if "$ref" in node:
            node = {"anyOf": [{"$ref": node.pop("$ref")}, {"type": "null"}], **node}
    return node


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    document = json.loads(source.read_text())
    schemas = document["components"]["schemas"]
    keep: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(references(schemas[name]) - keep)
    subset = {
        "info": {"source": document["info"]["title"], "version": document["info"]["version"]},
        "components": {"schemas": {name: honour_nullable(schemas[name]) for name in sorted(keep)}},
    }
    TARGET.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    print(f"{len(keep)} schemas -> {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
