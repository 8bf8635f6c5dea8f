"""Chat features and legacy completions as the official openai SDK uses them, on a real cluster."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from sim.tokens import encoding_for_model
from tests.integration.conftest import Server
from tests.openapi import assert_valid

MESSAGES: list[Any] = [{"role": "user", "content": "What's the weather like in Boston and Tokyo today?"}]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
    },
    "required": ["location"],
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA}},
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class GetWeather(BaseModel):
    location: str
    unit: Unit


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-understudy", max_retries=0)


def test_tool_calls_arguments_match_each_tools_schema(client: openai.OpenAI) -> None:
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
    for seed in range(4):
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS, seed=seed)
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        assert len({call.id for call in choice.message.tool_calls}) == len(choice.message.tool_calls)
        for call in choice.message.tool_calls:
            assert call.type == "function"
            jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])


def test_stream_helper_accumulates_parsed_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=MESSAGES,
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
    ) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls and final.choices[0].finish_reason == "tool_calls"
    assert isinstance(calls[0].function.parsed_arguments, GetWeather)
    assert len(deltas) > 1


def test_an_agent_loop_ends_with_text_after_the_tool_result(client: openai.OpenAI) -> None:
    messages: list[Any] = list(MESSAGES)
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    message = first.choices[0].message
    assert message.tool_calls
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "22 C and sunny"})
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    assert second.choices[0].message.tool_calls is None


def test_parse_with_a_pydantic_response_format(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
        response_format=CalendarEvent,
    )
    assert isinstance(completion.choices[0].message.parsed, CalendarEvent)


def test_json_object_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, response_format={"type": "json_object"}
    )
    content = completion.choices[0].message.content
    assert content is not None and isinstance(json.loads(content), dict)


def test_logprobs_come_back_per_token(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, logprobs=True, top_logprobs=2, max_tokens=5
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == completion.choices[0].message.content
    assert all(len(t.top_logprobs) == 2 for t in logprobs.content)


def test_same_seed_gives_the_same_answer_on_every_worker(server: Server) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "seed": 1234, "n": 2}
    seen: dict[str, set[str]] = {}
    # A new connection per request, until both workers have answered (bounded).
    for _ in range(200):
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = http.post("/v1/chat/completions", json=body)
        texts = json.dumps([c["message"]["content"] for c in response.json()["choices"]])
        seen.setdefault(response.headers["x-understudy-worker"], set()).add(texts)
        if len(seen) == 2 and sum(map(len, seen.values())) >= 2:
            break
    assert len(seen) == 2, "both workers should have answered"
    assert len(set().union(*seen.values())) == 1


def test_stop_sequence_ends_the_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stop=[".", "!"], max_tokens=400)
    assert completion.choices[0].finish_reason == "stop"
    content = completion.choices[0].message.content or ""
    assert "." not in content and "!" not in content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(encoding_for_model("gpt-4o").encode(content))


def test_streamed_tool_calls_over_plain_http(server: Server) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "stream": True}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        lines = http.post("/v1/chat/completions", json=body).text.split("\n\n")
    assert lines[-2] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-2]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    first_seen: set[int] = set()
    for chunk in chunks[:-1]:
        for delta in chunk["choices"][0]["delta"]["tool_calls"]:
            if "id" in delta:
                assert delta["index"] not in first_seen and delta["function"]["name"]
                first_seen.add(delta["index"])
            else:
                assert delta["index"] in first_seen and "name" not in delta["function"]
    assert sorted(first_seen) == list(range(len(first_seen)))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_legacy_completions_with_prompt_list_n_and_echo(client: openai.OpenAI) -> None:
    prompts = ["Once upon a time", "The quick brown fox"]
    raw = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt=prompts, n=2, echo=True)
    assert_valid("CreateCompletionResponse", json.loads(raw.content))
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    for choice in completion.choices:
        assert choice.text.startswith(prompts[choice.index // 2])
        assert choice.finish_reason == "length"
    encoding = encoding_for_model("gpt-3.5-turbo-instruct")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sum(len(encoding.encode(p)) for p in prompts)
    assert completion.usage.completion_tokens == 4 * 16


def test_legacy_completions_stream(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say this is a test",
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert len(encoding_for_model("gpt-3.5-turbo-instruct").encode(text)) == 7
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
