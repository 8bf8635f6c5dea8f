"""Responses, embeddings and images through the official openai SDK and plain HTTP, on a real cluster."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from sim.tokens import encoding_for_model
from tests.integration.conftest import Server
from tests.openapi import assert_valid

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Verdict(BaseModel):
    answer: str
    confidence: float


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-understudy", max_retries=0)


def test_responses_create_with_string_input(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4.1", input="Tell me a three sentence bedtime story.", instructions="Be kind."
    )
    assert_valid("Response", json.loads(raw.content))
    response = raw.parse()
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens == len(encoding_for_model("gpt-4.1").encode(response.output_text))


def test_responses_max_output_tokens_cuts_the_answer(client: openai.OpenAI) -> None:
    statuses = set()
    for _ in range(10):
        response = client.responses.create(model="gpt-4o", input="Tell me everything.", max_output_tokens=16)
        assert response.usage is not None and response.usage.output_tokens <= 16
        if response.status == "incomplete":
            assert response.incomplete_details is not None
            assert response.incomplete_details.reason == "max_output_tokens"
        statuses.add(response.status)
    assert "incomplete" in statuses


def test_responses_stream_helper_and_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="gpt-4o", input=[{"role": "user", "content": "Write a haiku about mocks."}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert final.output_text == deltas


def test_responses_raw_stream_has_event_lines(server: Server) -> None:
    body = {"model": "gpt-4o", "input": "hi", "stream": True}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/v1/responses", json=body, headers={"accept": "application/json"})
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")[:-1]
    ids = set()
    for block in blocks:
        event_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        assert_valid("ResponseStreamEvent", data)
        if "response" in data:
            ids.add(data["response"]["id"])
    assert len(ids) == 1


def test_responses_function_calls_through_the_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="gpt-4o", input="Weather in Oslo?", tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert calls
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), WEATHER_TOOL["parameters"])
        assert call.call_id.startswith("call_")


def test_responses_parse_gives_a_pydantic_object(client: openai.OpenAI) -> None:
    response = client.responses.parse(model="gpt-4o", input="Is water wet?", text_format=Verdict)
    assert isinstance(response.output_parsed, Verdict)


def test_embeddings_sdk_default_decodes_to_unit_vectors(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"])
    assert [len(item.embedding) for item in result.data] == [1536, 1536]
    for item in result.data:
        assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, abs_tol=1e-4)
    encoding = encoding_for_model("text-embedding-3-small")
    assert result.usage.prompt_tokens == len(encoding.encode("hello world")) + len(encoding.encode("goodbye"))
    again = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == result.data[0].embedding
    assert result.data[0].embedding != result.data[1].embedding


def test_embeddings_float_base64_dimensions_and_token_arrays(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        floats = http.post(
            "/v1/embeddings", json={"model": "text-embedding-3-large", "input": "abc", "encoding_format": "float"}
        ).json()
        packed = http.post(
            "/v1/embeddings", json={"model": "text-embedding-3-large", "input": "abc", "encoding_format": "base64"}
        ).json()
        short = http.post("/v1/embeddings", json={"model": "text-embedding-3-large", "input": "abc", "dimensions": 256})
        tokens = http.post("/v1/embeddings", json={"model": "text-embedding-ada-002", "input": [[1, 2, 3], [4, 5]]})
        refused = http.post("/v1/embeddings", json={"model": "text-embedding-ada-002", "input": "x", "dimensions": 8})
    assert_valid("CreateEmbeddingResponse", floats)
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 3072
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack(f"<{len(raw) // 4}f", raw) == pytest.approx(vector, abs=1e-7)
    assert len(short.json()["data"][0]["embedding"]) == 256
    assert tokens.json()["usage"]["prompt_tokens"] == 5
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "This model does not support specifying dimensions."


def test_images_b64_is_a_png_of_the_asked_size_and_urls_resolve(client: openai.OpenAI, server: Server) -> None:
    inline = client.images.generate(model="dall-e-2", prompt="a lighthouse", size="256x256", response_format="b64_json")
    assert inline.data is not None
    png = base64.b64decode(inline.data[0].b64_json or "")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (256, 256)
    linked = client.images.generate(model="dall-e-3", prompt="a lighthouse", size="1792x1024")
    assert linked.data is not None and linked.data[0].url and linked.data[0].revised_prompt
    fetched = httpx.get(linked.data[0].url, timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert struct.unpack(">II", fetched.content[16:24]) == (1792, 1024)
    several = client.images.generate(model="dall-e-2", prompt="x", n=3, size="512x512")
    assert several.data is not None and len(several.data) == 3
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-3", prompt="x", n=2)
