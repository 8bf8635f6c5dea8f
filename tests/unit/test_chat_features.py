"""Chat completion features beyond plain text: stop, seed, logprobs, tools, structured output."""

from typing import Any

import jsonschema
import orjson
import pytest

from sim import chat, chat_request
from sim.content import TextGenerator, build_vocabulary
from sim.errors import ApiError
from sim.replies import ReplyWriter
from sim.tokens import count_chat_prompt, count_tools, encoding_for_model
from tests.openapi import assert_valid

WRITER = ReplyWriter(TextGenerator(build_vocabulary(), seed=5))
MESSAGES = [{"role": "user", "content": "What is the weather in Paris and in Rome?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}


def answer(**extra: Any) -> tuple[chat.ChatCompletion, dict[str, Any]]:
    request = chat_request.parse_chat_request({"model": "gpt-4o", "messages": MESSAGES, **extra})
    completion = chat.synthesize(request, WRITER, created_s=1)
    body = orjson.loads(chat.completion_body(completion))
    assert_valid("CreateChatCompletionResponse", body)
    for event in chat.stream_events(completion, include_usage=True)[:-1]:
        assert_valid("CreateChatCompletionStreamResponse", orjson.loads(event[6:]))
    return completion, body


def streamed(completion: chat.ChatCompletion) -> list[dict[str, Any]]:
    return [orjson.loads(e[6:]) for e in chat.stream_events(completion, include_usage=False)[:-1]]


def test_stop_sequence_ends_the_reply_before_it() -> None:
    _, body = answer(stop=["."], max_tokens=300)
    choice = body["choices"][0]
    assert "." not in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"


def test_same_seed_same_request_same_answer() -> None:
    first = answer(seed=42, n=2)[1]["choices"]
    again = answer(seed=42, n=2)[1]["choices"]
    other = answer(seed=43, n=2)[1]["choices"]
    assert first == again
    assert first != other
    assert first[0] != first[1]


def test_logprobs_per_token_with_top_alternatives() -> None:
    completion, body = answer(logprobs=True, top_logprobs=3, max_tokens=6)
    entries = body["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == body["choices"][0]["message"]["content"]
    for entry in entries:
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        ranked = [t["logprob"] for t in entry["top_logprobs"]]
        assert ranked == sorted(ranked, reverse=True)
    chunks = streamed(completion)
    streamed_entries = [c["choices"][0]["logprobs"]["content"][0] for c in chunks[1:-1]]
    assert streamed_entries == entries


def test_tool_calls_carry_arguments_valid_for_each_schema() -> None:
    _, body = answer(tools=[WEATHER, TIME], seed=1)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    for call in choice["message"]["tool_calls"]:
        assert call["id"].startswith("call_") and call["type"] == "function"
        jsonschema.validate(orjson.loads(call["function"]["arguments"]), schemas[call["function"]["name"]])
    assert body["usage"]["prompt_tokens"] == count_chat_prompt(encoding_for_model("gpt-4o"), MESSAGES) + count_tools(
        encoding_for_model("gpt-4o"), [WEATHER["function"], TIME["function"]]
    )


def test_streamed_tool_calls_name_each_call_once_and_split_its_arguments() -> None:
    completion, body = answer(tools=[WEATHER, TIME], tool_choice="required", seed=3)
    calls: dict[int, dict[str, Any]] = {}
    for chunk in streamed(completion)[:-1]:
        for delta in chunk["choices"][0]["delta"]["tool_calls"]:
            if "id" in delta:
                assert delta["index"] not in calls
                assert delta["type"] == "function" and delta["function"]["arguments"] == ""
                calls[delta["index"]] = {"id": delta["id"], "name": delta["function"]["name"], "arguments": []}
            else:
                assert set(delta) == {"index", "function"} and set(delta["function"]) == {"arguments"}
                calls[delta["index"]]["arguments"].append(delta["function"]["arguments"])
    expected = body["choices"][0]["message"]["tool_calls"]
    assert sorted(calls) == list(range(len(expected)))
    for index, call in calls.items():
        assert call["id"] == expected[index]["id"] and call["name"] == expected[index]["function"]["name"]
        assert "".join(call["arguments"]) == expected[index]["function"]["arguments"]
        assert len(call["arguments"]) > 1
    assert streamed(completion)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_variants() -> None:
    forced = answer(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}})[1]
    assert [c["function"]["name"] for c in forced["choices"][0]["message"]["tool_calls"]] == ["get_time"]
    none = answer(tools=[WEATHER], tool_choice="none")[1]
    assert none["choices"][0]["finish_reason"] in ("stop", "length")
    single = answer(tools=[WEATHER, TIME], parallel_tool_calls=False, seed=2)[1]
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


def test_after_a_tool_result_the_model_answers_in_text() -> None:
    followup = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    request = chat_request.parse_chat_request({"model": "gpt-4o", "messages": followup, "tools": [WEATHER]})
    body = orjson.loads(chat.completion_body(chat.synthesize(request, WRITER, created_s=1)))
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"]


def test_json_schema_response_format_validates() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}
    for seed in range(5):
        _, body = answer(response_format=fmt, seed=seed)
        jsonschema.validate(orjson.loads(body["choices"][0]["message"]["content"]), schema)
    _, body = answer(response_format={"type": "json_object"})
    assert isinstance(orjson.loads(body["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"stop": 5}, "stop", "invalid_type"),
        ({"top_logprobs": 2}, "top_logprobs", "invalid_value"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
            "invalid_value",
        ),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        ({"tool_choice": "auto"}, "tool_choice", "invalid_value"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "invalid_value",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
        ({"seed": "x"}, "seed", "invalid_type"),
    ],
)
def test_bad_feature_parameters_get_openai_errors(extra: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ApiError) as raised:
        chat_request.parse_chat_request({"model": "gpt-4o", "messages": MESSAGES, **extra})
    assert (raised.value.status, raised.value.param, raised.value.code) == (400, param, code)
