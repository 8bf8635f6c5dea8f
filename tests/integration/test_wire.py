"""Plain HTTP over every OpenAI endpoint: bodies valid by OpenAI's OpenAPI schemas, errors in its shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server
from tests.openapi import assert_valid

USER: Any = [{"role": "user", "content": "hi"}]
ENDPOINTS: list[tuple[str, dict[str, Any], str, str]] = [
    # path, a valid body, the response schema, a required field to leave out
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": USER}, "CreateChatCompletionResponse", "messages"),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}, "CreateCompletionResponse", "prompt"),
    ("/v1/responses", {"model": "gpt-4o", "input": "hi"}, "Response", "model"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}, "CreateEmbeddingResponse", "input"),
    ("/v1/images/generations", {"prompt": "a cat", "response_format": "b64_json"}, "ImagesResponse", "prompt"),
]


@pytest.fixture
def http(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


@pytest.mark.parametrize(("path", "body", "schema", "required"), ENDPOINTS)
def test_bodies_match_openais_schemas(http: httpx.Client, path: str, body: Any, schema: str, required: str) -> None:
    response = http.post(path, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    assert_valid(schema, response.json())


@pytest.mark.parametrize(("path", "body", "schema", "required"), ENDPOINTS)
def test_a_missing_field_is_a_400_in_openais_shape(
    http: httpx.Client, path: str, body: Any, schema: str, required: str
) -> None:
    response = http.post(path, json={key: value for key, value in body.items() if key != required})
    assert response.status_code == 400
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and required in error["message"]


@pytest.mark.parametrize(("path", "body", "schema", "required"), ENDPOINTS)
def test_wrong_method_is_a_405_with_allow(http: httpx.Client, path: str, body: Any, schema: str, required: str) -> None:
    response = http.get(path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert_valid("ErrorResponse", response.json())


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/openai/v1/models"])
def test_models_listing_matches_the_schema_on_every_alias(http: httpx.Client, path: str) -> None:
    listing = http.get(path).json()
    assert_valid("ListModelsResponse", listing)
    first = listing["data"][0]["id"]
    assert_valid("Model", http.get(f"{path}/{first}").json())
    assert http.post(path).headers["allow"] == "GET"
