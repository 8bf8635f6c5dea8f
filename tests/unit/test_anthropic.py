"""The Anthropic Messages core: parsing, synthesis, and the bytes, read back through the official SDK.

The SDK runs against an ``httpx2.MockTransport`` whose handler answers with
this package's bytes, so what is asserted is what the SDK makes of them.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import anthropic_wire as wire
from sim import schema_values, tools
from sim.anthropic_message import AnthropicMessage, TextBlock, ThinkingBlock, ToolUseBlock, synthesize
from sim.anthropic_request import parse_count_tokens_request, parse_messages_request
from sim.anthropic_tokens import count_input_tokens
from sim.content import TextGenerator, build_vocabulary
from sim.errors import ApiError
from sim.replies import ContentPolicy, ReplyWriter
from sim.tokens import O200K, get_encoding

MODEL = "claude-opus-4-7"
HELLO: Any = [{"role": "user", "content": "Hello, Claude"}]  # Any: also passed to the SDK's typed params
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
# A tool input that exercises the SDK's partial-JSON accumulation: nesting, escapes, non-ASCII.
RICH_INPUT = {"city": 'Zürich "old town"', "days": 3, "tags": ["a", "b\n"], "nested": {"ok": True, "x": None}}
TOOL_ID = re.compile(r"toolu_01[A-Za-z0-9]{22}")
MESSAGE_ID = re.compile(r"msg_01[A-Za-z0-9]{22}")


@pytest.fixture(scope="module")
def generator() -> TextGenerator:
    return TextGenerator(build_vocabulary(), seed=5)


@pytest.fixture
def writer(generator: TextGenerator) -> ReplyWriter:
    return ReplyWriter(generator)


@pytest.fixture(autouse=True)
def simple_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tool inputs from a stand-in generator, so these tests do not depend on the schema generator's own."""
    monkeypatch.setattr(tools, "value_for", lambda schema, rand: dict.fromkeys(schema.get("properties", {}), "x"))


@pytest.fixture
def rich_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "value_for", lambda schema, rand: RICH_INPUT)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 64, "messages": HELLO, **extra}


def answer(writer: ReplyWriter, seed: int = 1, **extra: Any) -> AnthropicMessage:
    return synthesize(parse_messages_request(body(**extra)), writer, rand=random.Random(seed))


def error_of(parse: Callable[[Any], Any], value: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(value)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


# --- parsing ---------------------------------------------------------------------------------------------------


def tool_turns(tool_id: str = "toolu_01abc", result_id: str = "toolu_01abc") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": result_id, "content": "Sunny, 21 C"}]},
    ]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"model": MODEL, "messages": HELLO}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        ({"max_tokens": 5, "messages": HELLO}, "model: Field required"),
        (body(model=3), "model: Input should be a valid string"),
        (body(max_tokens="5"), "max_tokens: Input should be a valid integer"),
        (body(max_tokens=-1), "max_tokens: Input should be greater than or equal to 0"),
        (
            body(model="claude-3-opus-20240229", max_tokens=21333),
            "max_tokens: 21333 > 4096, which is the maximum allowed number of output tokens for claude-3-opus-20240229",
        ),
        (body(messages=[]), "messages: at least one message is required"),
        (body(messages={"role": "user"}), "messages: Input should be a valid list"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role: Input should be 'user' or 'assistant'"),
        (body(messages=[{"content": "x"}]), "messages.0.role: Field required"),
        (body(messages=[{"role": "user"}]), "messages.0.content: Field required"),
        (
            body(messages=[{"role": "user", "content": ""}, {"role": "assistant", "content": "Hi"}]),
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            body(messages=[*HELLO, {"role": "assistant", "content": "The answer is "}]),
            "messages: final assistant content cannot end with trailing whitespace",
        ),
        (
            body(messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "messages.0.content.0: Unable to extract tag using discriminator 'type'",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            "messages: text content blocks must be non-empty",
        ),
        (
            body(
                messages=[
                    *tool_turns()[:1],
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": []}]},
                ]
            ),
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        ),
        (
            body(messages=[*tool_turns()[:2], {"role": "user", "content": "and?"}]),
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01abc. "
            "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            body(messages=tool_turns(result_id="toolu_01zzz")),
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01abc. "
            "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            body(messages=[tool_turns()[2]]),
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01abc. "
            "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
        ),
        (body(system=[{"type": "image"}]), "system.0.type: Input should be 'text'"),
        (body(stream="yes"), "stream: Input should be a valid boolean"),
        (body(stop_sequences="END"), "stop_sequences: Input should be a valid list"),
        (body(stop_sequences=["END", 7]), "stop_sequences.1: Input should be a valid string"),
        (body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (body(service_tier="priority"), "service_tier: Input should be 'auto' or 'standard_only'"),
        (body(response_format={"type": "json_object"}), "response_format: Extra inputs are not permitted"),
        (body(tools=[WEATHER, WEATHER]), "tools: Tool names must be unique."),
        (body(tools=[{"input_schema": {"type": "object"}}]), "tools.0.custom.name: Field required"),
        (
            body(tools=[{"name": "a b", "input_schema": {"type": "object"}}]),
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        ),
        (body(tools=[{"name": "f"}]), "tools.0.custom.input_schema: Field required"),
        (
            body(tools=[{"name": "f", "input_schema": {"anyOf": [{"type": "object"}]}}]),
            "tools.0.custom.input_schema: input_schema does not support oneOf, allOf, or anyOf at the top level",
        ),
        (
            body(tool_choice={"type": "required"}, tools=[WEATHER]),
            "tool_choice: Input tag 'required' found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'",
        ),
        (body(tool_choice={"type": "tool"}, tools=[WEATHER]), "tool_choice.tool.name: Field required"),
        (
            body(thinking={"type": "enabled", "budget_tokens": 512}, max_tokens=4096),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (body(thinking={"type": "enabled"}, max_tokens=4096), "thinking.enabled.budget_tokens: Field required"),
        (
            body(thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=2048),
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
        ),
        (
            body(thinking={"type": "adaptive"}, tools=[WEATHER], tool_choice={"type": "any"}),
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        (
            body(thinking={"type": "adaptive"}, temperature=0.2),
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our "
            "documentation at https://platform.claude.com/docs/en/build-with-claude/extended-thinking",
        ),
        (
            body(output_config={"format": {"type": "json_object"}}),
            "output_config.format.type: Input should be 'json_schema'",
        ),
        ([1, 2], "Input should be a valid dictionary or object to extract fields from"),
    ],
)
def test_invalid_requests_get_the_apis_own_wording(request_body: Any, message: str) -> None:
    assert error_of(parse_messages_request, request_body).message == message


def test_a_valid_request_is_reduced_to_what_a_reply_needs() -> None:
    request = parse_messages_request(
        body(
            system=[{"type": "text", "text": "Be brief."}],
            stop_sequences=["END"],
            stream=True,
            temperature=0.5,
            top_k=5,
            metadata={"user_id": "u1"},
            service_tier="auto",
            tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}],
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
            messages=[*tool_turns(), {"role": "assistant", "content": "It is"}],
        )
    )
    assert request.stream is True
    assert request.stop_sequences == ("END",)
    assert request.prompt == "Sunny, 21 C"  # the last user turn holds only a tool result: its text
    assert request.after_tool_result is True
    assert [tool.name for tool in request.tool_plan.tools] == ["get_weather"]  # server tools run at the provider
    assert request.tool_plan.parallel is False


def test_streaming_is_decided_by_the_body_alone() -> None:
    assert parse_messages_request(body()).stream is False
    assert parse_messages_request(body(stream=None)).stream is False
    assert parse_messages_request(body(stream=True)).stream is True


def test_current_sdk_fields_are_accepted() -> None:
    parse_messages_request(
        body(
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],
            output_config={"effort": "low"},
            cache_control={"type": "ephemeral"},
            speed="standard",
            inference_geo="us",
            thinking={"type": "adaptive", "display": "omitted"},
        )
    )


def test_count_tokens_takes_the_create_fields_less_max_tokens() -> None:
    assert parse_count_tokens_request({"model": MODEL, "messages": HELLO}).max_tokens == 0
    assert error_of(parse_count_tokens_request, body()).message == "max_tokens: Extra inputs are not permitted"
    assert error_of(parse_count_tokens_request, {"model": MODEL}).message == "messages: Field required"
    assert error_of(parse_count_tokens_request, {"messages": HELLO}).message == "model: Field required"


# --- synthesis -------------------------------------------------------------------------------------------------


def text_of(message: AnthropicMessage) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def test_a_generated_reply_ends_its_turn_naturally(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=4000)
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert text_of(message).endswith(".")
    assert message.output_tokens == len(get_encoding(O200K).encode(text_of(message))) < 4000
    assert MESSAGE_ID.fullmatch(message.id)


def test_max_tokens_cuts_a_longer_reply(writer: ReplyWriter) -> None:
    # Natural replies are at least 8 tokens long, so 7 always cuts.
    message = answer(writer, max_tokens=7)
    assert (message.stop_reason, message.stop_sequence, message.output_tokens) == ("max_tokens", None, 7)
    assert len(get_encoding(O200K).encode(text_of(message))) == 7


def test_a_reply_that_ends_within_the_limit_ends_the_turn(generator: TextGenerator) -> None:
    writer = ReplyWriter(generator, default=ContentPolicy(mode="fixed", text="Paris is the capital."))
    message = answer(writer, max_tokens=100)
    assert (text_of(message), message.stop_reason, message.stop_sequence) == ("Paris is the capital.", "end_turn", None)
    assert message.output_tokens == len(get_encoding(O200K).encode("Paris is the capital."))


def test_a_stop_sequence_cuts_the_reply_and_is_reported(generator: TextGenerator) -> None:
    writer = ReplyWriter(generator, default=ContentPolicy(mode="fixed", text="One, two. END three."))
    message = answer(writer, stop_sequences=["END", "three"])
    assert (text_of(message), message.stop_reason, message.stop_sequence) == ("One, two. ", "stop_sequence", "END")


def test_a_configured_reply_longer_than_max_tokens_is_cut(generator: TextGenerator) -> None:
    writer = ReplyWriter(generator, default=ContentPolicy(mode="echo"))
    message = answer(writer, max_tokens=2, messages=[{"role": "user", "content": "one two three four"}])
    assert (text_of(message), message.stop_reason, message.output_tokens) == ("one two", "max_tokens", 2)


def test_max_tokens_zero_only_warms_the_cache(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=0)
    assert (message.content, message.stop_reason, message.output_tokens) == ((), "max_tokens", 0)


def calls_of(message: AnthropicMessage) -> list[ToolUseBlock]:
    return [block for block in message.content if isinstance(block, ToolUseBlock)]


def test_auto_calls_tools_after_a_short_preamble(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=500, tools=[WEATHER, CLOCK])
    assert message.stop_reason == "tool_use"
    assert isinstance(message.content[0], TextBlock) and text_of(message).endswith(".")
    calls = calls_of(message)
    assert 1 <= len(calls) <= 2 and len({call.call.name for call in calls}) == len(calls)
    assert all(TOOL_ID.fullmatch(call.id) for call in calls)


def test_auto_answers_in_text_once_the_last_user_turn_carries_tool_results(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=7, tools=[WEATHER], messages=tool_turns())
    assert calls_of(message) == [] and message.stop_reason == "max_tokens"


def test_any_calls_even_after_tool_results_and_without_a_preamble(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=500, tools=[WEATHER], tool_choice={"type": "any"}, messages=tool_turns())
    assert message.stop_reason == "tool_use"
    assert isinstance(message.content[0], ToolUseBlock)


def test_a_named_tool_is_the_one_called(writer: ReplyWriter) -> None:
    for seed in range(10):
        message = answer(
            writer, seed, max_tokens=500, tools=[WEATHER, CLOCK], tool_choice={"type": "tool", "name": "get_time"}
        )
        assert [call.call.name for call in calls_of(message)] == ["get_time"]


def test_none_never_calls(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=7, tools=[WEATHER], tool_choice={"type": "none"})
    assert calls_of(message) == [] and message.stop_reason == "max_tokens"


def test_disable_parallel_tool_use_makes_one_call(writer: ReplyWriter) -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    counts = {
        len(calls_of(answer(writer, seed, max_tokens=500, tools=[WEATHER, CLOCK], tool_choice=choice)))
        for seed in range(20)
    }
    assert counts == {1}
    parallel = {len(calls_of(answer(writer, seed, max_tokens=500, tools=[WEATHER, CLOCK]))) for seed in range(20)}
    assert parallel == {1, 2}


def test_server_tools_produce_no_tool_use(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=7, tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert calls_of(message) == [] and message.stop_reason == "max_tokens"


def test_calls_that_do_not_fit_in_max_tokens_give_way_to_text(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=3, tools=[WEATHER], tool_choice={"type": "any"})
    assert calls_of(message) == [] and message.stop_reason == "max_tokens" and message.output_tokens == 3


def test_tool_inputs_come_from_the_schema_generator(writer: ReplyWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "value_for", schema_values.value_for)
    message = answer(writer, max_tokens=500, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    [call] = calls_of(message)
    assert isinstance(call.call.input, dict) and isinstance(call.call.input["city"], str)
    assert orjson.loads(call.call.arguments) == call.call.input


def test_a_schema_without_values_is_a_400_naming_the_tool(writer: ReplyWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(schema: Any, rand: random.Random) -> Any:
        if "properties" in schema and "city" in schema["properties"]:
            raise schema_values.SchemaError("properties.city", "no value satisfies this schema")
        return {}

    monkeypatch.setattr(tools, "value_for", refuse)
    monkeypatch.setattr(schema_values, "value_for", refuse)
    with pytest.raises(ApiError) as caught:
        answer(writer, max_tokens=500, tools=[CLOCK, WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    assert caught.value.status == 400
    assert caught.value.message.startswith("tools.1.custom.input_schema: JSON schema is invalid.")
    assert "get_weather" in caught.value.message and "properties.city" in caught.value.message


def test_enabled_thinking_comes_first_within_its_budget_and_is_billed(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024})
    thinking = message.content[0]
    assert isinstance(thinking, ThinkingBlock)
    assert 0 < thinking.tokens <= 1024 and len(thinking.signature) > 100
    assert message.thinking_tokens == thinking.tokens
    assert message.output_tokens == thinking.tokens + len(get_encoding(O200K).encode(text_of(message)))
    assert message.stop_reason == "end_turn"


def test_omitted_thinking_shows_no_text_but_is_billed(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2000, "display": "omitted"})
    thinking = message.content[0]
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == "" and thinking.signature
    assert message.thinking_tokens > 0


def test_adaptive_thinking_thinks_and_disabled_does_not(writer: ReplyWriter) -> None:
    assert isinstance(answer(writer, max_tokens=300, thinking={"type": "adaptive"}).content[0], ThinkingBlock)
    assert not any(isinstance(b, ThinkingBlock) for b in answer(writer, thinking={"type": "disabled"}).content)


def test_structured_output_is_json_of_the_schema(writer: ReplyWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_values, "value_for", lambda schema, rand: {"answer": 42})
    message = answer(
        writer, max_tokens=100, output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}
    )
    assert orjson.loads(text_of(message)) == {"answer": 42} and message.stop_reason == "end_turn"


@settings(max_examples=60, deadline=None)
@given(
    max_tokens=st.integers(min_value=0, max_value=3000),
    thinking=st.sampled_from([None, {"type": "adaptive"}, {"type": "enabled", "budget_tokens": 1024}]),
    choice=st.sampled_from([None, {"type": "none"}, {"type": "any"}]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_output_never_exceeds_max_tokens(
    generator: TextGenerator, max_tokens: int, thinking: Any, choice: Any, seed: int
) -> None:
    extra: dict[str, Any] = {"max_tokens": max_tokens, "tools": [WEATHER, CLOCK]}
    if thinking is not None:
        if choice == {"type": "any"} or (thinking.get("budget_tokens", 0) >= max_tokens):
            return
        extra["thinking"] = thinking
    if choice is not None:
        extra["tool_choice"] = choice
    message = answer(ReplyWriter(generator), seed, **extra)
    assert message.output_tokens <= max_tokens
    assert (message.stop_reason == "tool_use") == bool(calls_of(message))
    thinking_tokens = sum(block.tokens for block in message.content if isinstance(block, ThinkingBlock))
    assert thinking_tokens == message.thinking_tokens


# --- input tokens ----------------------------------------------------------------------------------------------


def counted(**extra: Any) -> int:
    return count_input_tokens(parse_count_tokens_request({"model": MODEL, "messages": HELLO, **extra}))


def test_input_estimate_matches_the_documented_example() -> None:
    assert counted(system="You are a scientist") == 14


def test_input_estimate_charges_tools_images_and_ignores_old_thinking() -> None:
    base = counted()
    tool_json = len(get_encoding("cl100k_base").encode(orjson.dumps(WEATHER).decode()))
    assert counted(tools=[WEATHER]) == base + 346 + tool_json
    assert counted(tools=[WEATHER], tool_choice={"type": "any"}) == base + 313 + tool_json
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    with_image = [{"role": "user", "content": [image, {"type": "text", "text": "Hello, Claude"}]}]
    assert counted(messages=with_image) == base + 1600
    thought = {"type": "thinking", "thinking": "long thoughts " * 50, "signature": "sig"}
    turns = [*HELLO, {"role": "assistant", "content": [thought, {"type": "text", "text": "Hi."}]}, *HELLO]
    assert counted(messages=turns) == counted(messages=[*HELLO, {"role": "assistant", "content": "Hi."}, *HELLO])


def test_usage_input_tokens_is_the_same_estimate(writer: ReplyWriter) -> None:
    request = parse_messages_request(body(system="You are a scientist"))
    assert synthesize(request, writer, rand=random.Random(1)).input_tokens == count_input_tokens(request) == 14


# --- bytes -----------------------------------------------------------------------------------------------------


def decoded(events: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in events:
        assert b"\r" not in event and event.endswith(b"\n\n") and event.count(b"\n") == 3
        kind, data = event[:-2].split(b"\n")
        assert kind.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[6:])
        assert payload["type"] == kind[7:].decode()
        out.append((payload["type"], payload))
    return out


def test_stream_events_follow_the_apis_order(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024}, tools=[WEATHER])
    events = decoded(wire.stream_events(message))
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("ping") == 1
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == ([], None, 1)
    assert start["usage"]["input_tokens"] == message.input_tokens
    opened = [payload["index"] for kind, payload in events if kind == "content_block_start"]
    closed = [payload["index"] for kind, payload in events if kind == "content_block_stop"]
    assert opened == closed == list(range(len(message.content)))
    thinking_deltas = [p["delta"]["type"] for k, p in events if k == "content_block_delta" and p["index"] == 0]
    assert thinking_deltas[-1] == "signature_delta" and set(thinking_deltas[:-1]) == {"thinking_delta"}
    tool_index = len(message.content) - 1
    partial = [p["delta"]["partial_json"] for k, p in events if k == "content_block_delta" and p["index"] == tool_index]
    assert partial[0] == "" and orjson.loads("".join(partial)) == calls_of(message)[-1].call.input
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == message.output_tokens


def test_a_stream_without_blocks_still_pings_once(writer: ReplyWriter) -> None:
    kinds = [kind for kind, _ in decoded(wire.stream_events(answer(writer, max_tokens=0)))]
    assert kinds == ["message_start", "ping", "message_delta", "message_stop"]


def test_message_body_has_the_apis_shape(writer: ReplyWriter) -> None:
    message = answer(writer, max_tokens=5)
    payload = orjson.loads(wire.message_body(message))
    assert list(payload) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
    assert payload["usage"] == {
        "input_tokens": message.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 5,
        "service_tier": "standard",
    }


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (418, "invalid_request_error"),
        (503, "api_error"),
    ],
)
def test_error_types_follow_the_status(status: int, error_type: str) -> None:
    payload = orjson.loads(wire.error_body(ApiError(status, "boom")))
    assert payload == {"type": "error", "error": {"type": error_type, "message": "boom"}}


def test_an_anthropic_error_type_given_by_the_caller_is_kept() -> None:
    error = ApiError(403, "Your credit balance is too low.", error_type="billing_error")
    assert orjson.loads(wire.error_body(error, request_id="req_1"))["error"]["type"] == "billing_error"
    assert orjson.loads(wire.error_body(error, request_id="req_1"))["request_id"] == "req_1"


def test_models_have_display_names_and_release_dates() -> None:
    info = {entry["id"]: entry for entry in orjson.loads(wire.models_body(wire.DEFAULT_MODELS))["data"]}
    assert info["claude-sonnet-4-5-20250929"]["display_name"] == "Claude Sonnet 4.5"
    assert info["claude-sonnet-4-5-20250929"]["created_at"] == "2025-09-29T00:00:00Z"
    assert info["claude-opus-4-1"]["display_name"] == "Claude Opus 4.1"
    assert info["claude-mythos-preview"]["display_name"] == "Claude Mythos Preview"
    assert info["claude-opus-5"]["display_name"] == "Claude Opus 5"
    assert wire.display_name("claude-3-5-haiku-latest") == "Claude Haiku 3.5"
    assert all(entry["type"] == "model" and entry["lifecycle"] == "active" for entry in info.values())


# --- through the official SDK ----------------------------------------------------------------------------------


class FakeApi:
    """Answers the SDK's requests with this package's bytes, deterministically per request."""

    def __init__(self, writer: ReplyWriter, models: tuple[str, ...] = wire.DEFAULT_MODELS) -> None:
        self.writer = writer
        self.models = models
        self.mid_stream_error: ApiError | None = None
        self.bodies: list[dict[str, Any]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "GET" and path == "/v1/models":
            query = request.url.params
            page = wire.models_body(
                self.models,
                limit=int(query.get("limit", 20)),
                after_id=query.get("after_id"),
                before_id=query.get("before_id"),
            )
            return json_response(page)
        if request.method == "GET" and path.startswith("/v1/models/"):
            return json_response(wire.model_body(path.rsplit("/", 1)[1]))
        payload = orjson.loads(request.content)
        self.bodies.append(payload)
        try:
            if path == "/v1/messages/count_tokens":
                return json_response(wire.count_tokens_body(payload))
            parsed = parse_messages_request(payload)
            if parsed.model not in self.models:
                raise wire.model_not_found(parsed.model)
            message = synthesize(parsed, self.writer, rand=random.Random(9))
        except ApiError as error:
            return json_response(wire.error_body(error, request_id="req_011test"), status=error.status)
        if not parsed.stream:
            return json_response(wire.message_body(message))
        events = wire.stream_events(message)
        if self.mid_stream_error is not None:
            events = [*events[:4], wire.error_event(self.mid_stream_error)]
        return httpx2.Response(200, content=b"".join(events), headers={"content-type": "text/event-stream"})


def json_response(content: bytes, status: int = 200) -> httpx2.Response:
    return httpx2.Response(
        status, content=content, headers={"content-type": "application/json", "request-id": "req_011test"}
    )


@pytest.fixture
def api(writer: ReplyWriter) -> FakeApi:
    return FakeApi(writer)


@pytest.fixture
def client(api: FakeApi) -> Iterator[anthropic.Anthropic]:
    http = httpx2.Client(transport=httpx2.MockTransport(api.handle))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model the SDK deems deprecated would warn: the tests use current ones
        yield anthropic.Anthropic(base_url="http://test", api_key="x", http_client=http, max_retries=0)


def blocks(content: list[Any]) -> list[dict[str, Any]]:
    return [block.model_dump(exclude={"parsed_output"}, exclude_none=True) for block in content]


def test_sdk_create_reads_the_message(client: anthropic.Anthropic, api: FakeApi) -> None:
    message = client.messages.create(model=MODEL, max_tokens=7, messages=[{"role": "user", "content": "Hi"}])
    expected = synthesize(parse_messages_request(api.bodies[-1]), api.writer, rand=random.Random(9))
    assert isinstance(message, anthropic.types.Message)
    assert message.id == expected.id and message.model == MODEL and message.role == "assistant"
    assert [block.text for block in message.content if block.type == "text"] == [text_of(expected)]
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 7)
    assert message.usage.input_tokens == expected.input_tokens
    assert message._request_id == "req_011test"


def test_sdk_raw_stream_yields_the_events(client: anthropic.Anthropic) -> None:
    events: list[Any] = list(client.messages.create(model=MODEL, max_tokens=6, messages=HELLO, stream=True))
    assert [event.type for event in events][:2] == ["message_start", "content_block_start"]
    assert [event.type for event in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert sum(1 for event in events if event.type == "content_block_delta") == 6


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"stop_sequences": ["zzz"]},
        {"tools": [WEATHER, CLOCK]},
        {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": [WEATHER]},
        {"thinking": {"type": "adaptive", "display": "omitted"}},
    ],
)
def test_sdk_stream_helper_rebuilds_the_non_streamed_message(
    client: anthropic.Anthropic, rich_inputs: None, extra: dict[str, Any]
) -> None:
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 1500, "messages": HELLO, **extra}
    whole = client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(block.text for block in whole.content if block.type == "text")
    assert blocks(final.content) == blocks(whole.content)
    assert (final.id, final.stop_reason, final.stop_sequence) == (whole.id, whole.stop_reason, whole.stop_sequence)
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    for block in final.content:
        if block.type == "tool_use":
            assert block.input == RICH_INPUT and TOOL_ID.fullmatch(block.id)
        if block.type == "thinking":
            assert block.signature


def test_sdk_count_tokens(client: anthropic.Anthropic) -> None:
    count = client.messages.count_tokens(model=MODEL, system="You are a scientist", messages=HELLO)
    assert count.input_tokens == 14


@pytest.mark.parametrize(
    ("request_extra", "exception", "error_type"),
    [
        ({"max_tokens": -1}, anthropic.BadRequestError, "invalid_request_error"),
        ({"model": "claude-nonexistent"}, anthropic.NotFoundError, "not_found_error"),
    ],
)
def test_sdk_raises_the_matching_exception(
    client: anthropic.Anthropic, request_extra: dict[str, Any], exception: type[Exception], error_type: str
) -> None:
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 5, "messages": HELLO, **request_extra}
    with pytest.raises(exception) as caught:
        client.messages.create(**request)
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert isinstance(error.body, dict) and error.body["error"]["type"] == error_type
    assert error.type == error_type and error.request_id == "req_011test"


@pytest.mark.parametrize(
    ("status", "exception"),
    [(401, anthropic.AuthenticationError), (429, anthropic.RateLimitError), (529, anthropic.OverloadedError)],
)
def test_sdk_maps_error_bodies_by_status(status: int, exception: type[anthropic.APIStatusError]) -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        return json_response(wire.error_body(ApiError(status, "nope")), status=status)

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    sdk = anthropic.Anthropic(base_url="http://test", api_key="x", http_client=http, max_retries=0)
    with pytest.raises(exception) as caught:
        sdk.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": wire.error_type(ApiError(status, "")), "message": "nope"},
    }


def test_sdk_raises_on_an_error_event_mid_stream(client: anthropic.Anthropic, api: FakeApi) -> None:
    api.mid_stream_error = ApiError(529, "Overloaded")
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
            "".join(stream.text_stream)
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_sdk_lists_every_model_across_pages(client: anthropic.Anthropic) -> None:
    assert [model.id for model in client.models.list(limit=5)] == list(wire.DEFAULT_MODELS)
    info = client.models.retrieve("claude-sonnet-4-5-20250929")
    assert (info.display_name, info.created_at.year, info.type) == ("Claude Sonnet 4.5", 2025, "model")
