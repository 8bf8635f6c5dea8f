"""The official anthropic SDK and plain HTTP against a real two-worker cluster."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from tests.integration.conftest import Server

MODEL = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "Name three rivers in Europe, please."}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-understudy"}


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-understudy", max_retries=0)


def text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def test_create_returns_a_message_with_usage_and_request_id(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1024, system="You are terse.", messages=MESSAGES
    )
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["x-understudy-worker"] in {"w0", "w1"}
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert text_of(message)
    counted = client.messages.count_tokens(model=MODEL, system="You are terse.", messages=MESSAGES)
    assert message.usage.input_tokens == counted.input_tokens > 0
    assert message.usage.output_tokens > 0


def test_system_blocks_and_stop_sequences(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}],
        stop_sequences=["."],
    )
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "."
    assert "." not in text_of(message)


def test_max_tokens_cuts_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_stream_helper_text_stream_and_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == text_of(final) and text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_tool_use_streamed_and_accumulated_by_the_helper(client: anthropic.Anthropic) -> None:
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        with client.messages.stream(
            model=MODEL, max_tokens=1024, messages=MESSAGES, tools=[WEATHER], tool_choice=choice
        ) as stream:
            final = stream.get_final_message()
        uses = [block for block in final.content if block.type == "tool_use"]
        assert uses and final.stop_reason == "tool_use"
        for use in uses:
            assert use.id.startswith("toolu_") and use.name == "get_weather"
            jsonschema.validate(use.input, WEATHER["input_schema"])


def test_tool_loop_ends_in_text(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    results = [
        {"type": "tool_result", "tool_use_id": block.id, "content": "15 degrees"}
        for block in first.content
        if block.type == "tool_use"
    ]
    second = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        tools=[WEATHER],
        messages=[*MESSAGES, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}],
    )
    assert second.stop_reason == "end_turn" and text_of(second)


def test_thinking_blocks_carry_a_signature(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024}, messages=MESSAGES
    ) as stream:
        thinking = "".join(event.thinking for event in stream if event.type == "thinking")
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "thinking" and block.signature and block.thinking == thinking
    assert final.content[-1].type == "text"


def test_models_list_and_retrieve(client: anthropic.Anthropic) -> None:
    models = list(client.models.list(limit=2))
    assert len(models) >= 3 and all(model.type == "model" and model.id.startswith("claude") for model in models)
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


@pytest.mark.parametrize("auth", [{"x-api-key": "k"}, {"authorization": "Bearer k"}])
@pytest.mark.parametrize("path", ["/v1/messages", "/anthropic/v1/messages"])
def test_raw_stream_event_sequence(server: Server, auth: dict[str, str], path: str) -> None:
    body = {"model": MODEL, "max_tokens": 50, "messages": MESSAGES, "stream": True}
    headers = {"anthropic-version": "2026-10-21", "accept": "application/json", **auth}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post(path, json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"]
    events = []
    for block in response.text.split("\n\n")[:-1]:
        event_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        events.append(data)
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert events[-2]["usage"]["output_tokens"] >= len(deltas) > 0
    assert events[-2]["delta"]["stop_reason"] in ("end_turn", "max_tokens")


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "error_type"),
    [
        ("POST", "/v1/messages", b'{"model": "claude-haiku-4-5", "messages": []}', 400, "invalid_request_error"),
        ("POST", "/v1/messages", b"{not json", 400, "invalid_request_error"),
        (
            "POST",
            "/v1/messages",
            b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}',
            400,
            "invalid_request_error",
        ),  # no max_tokens
        (
            "POST",
            "/v1/messages",
            b'{"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}',
            400,
            "invalid_request_error",
        ),  # no model
        ("POST", "/v1/no/such/thing", b"{}", 404, "not_found_error"),
        ("GET", "/v1/messages", b"", 405, "invalid_request_error"),
        ("POST", "/anthropic/v1/messages", b"x" * (50 * 1024 * 1024 + 1), 413, "request_too_large"),
    ],
)
def test_errors_in_anthropic_shape(
    server: Server, method: str, path: str, content: bytes, status: int, error_type: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.request(method, path, content=content, headers={**HEADERS, "content-type": "application/json"})
        assert response.status_code == status
        body = response.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == error_type and body["error"]["message"]
        assert response.headers["request-id"].startswith("req_")
        assert body["request_id"] == response.headers["request-id"]
        if status == 405:
            assert response.headers["allow"] == "POST"
        assert http.get("/health").status_code == 200


def test_sdk_raises_its_own_error_classes(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model=MODEL, max_tokens=0 - 1, messages=MESSAGES)
    assert raised.value.status_code == 400
    assert raised.value.request_id is not None and raised.value.request_id.startswith("req_")
    assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
