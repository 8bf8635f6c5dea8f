"""Whatever JSON a client sends, every endpoint answers or refuses with ApiError; nothing else escapes."""

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import (
    anthropic_message,
    anthropic_request,
    anthropic_wire,
    chat,
    chat_request,
    completions,
    embeddings,
    images,
    responses,
)
from sim.content import TextGenerator, build_vocabulary
from sim.errors import ApiError
from sim.replies import ReplyWriter, request_random

WRITER = ReplyWriter(TextGenerator(build_vocabulary(), seed=1))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def _chat(body: Any) -> None:
    request = chat_request.parse_chat_request(body)
    completion = chat.synthesize(request, WRITER, created_s=1)
    chat.completion_body(completion)
    chat.stream_events(completion, include_usage=True)


def _completions(body: Any) -> None:
    request = completions.parse_completion_request(body)
    completions.completion_body(completions.synthesize(request, WRITER, created_s=1))


def _responses(body: Any) -> None:
    response = responses.synthesize(responses.parse_responses_request(body), WRITER, created_s=1)
    responses.response_body(response)
    responses.stream_events(response)


def _messages(body: Any) -> None:
    request = anthropic_request.parse_messages_request(body)
    message = anthropic_message.synthesize(request, WRITER, rand=request_random(body, WRITER.generator.rng))
    anthropic_wire.message_body(message)
    anthropic_wire.stream_events(message)


def _embeddings(body: Any) -> None:
    embeddings.embeddings_body(embeddings.parse_embeddings_request(body))


def _images(body: Any) -> None:
    images.images_body(images.parse_images_request(body), created_s=1, url_base="http://x")


ENDPOINTS: dict[str, tuple[Callable[[Any], None], dict[str, Any]]] = {
    "chat": (_chat, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    "completions": (_completions, {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
    "responses": (_responses, {"model": "gpt-4o", "input": "hi"}),
    "messages": (
        _messages,
        {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "count_tokens": (
        anthropic_wire.count_tokens_body,
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "embeddings": (_embeddings, {"model": "text-embedding-3-small", "input": "hi"}),
    "images": (_images, {"prompt": "hi", "model": "dall-e-2", "size": "256x256"}),
}


OPTIONAL_FIELDS = (
    "stream", "n", "tools", "tool_choice", "max_tokens", "stop", "seed", "system", "response_format", "text",
    "dimensions", "encoding_format", "thinking", "logprobs", "top_logprobs", "instructions", "max_output_tokens",
    "stop_sequences", "echo",
)  # fmt: skip


def run(endpoint: Callable[[Any], None], body: Any) -> None:
    try:
        endpoint(body)
    except ApiError as error:
        assert 400 <= error.status < 500 and error.message


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_arbitrary_bodies(name: str, body: Any) -> None:
    run(ENDPOINTS[name][0], body)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_bodies_with_one_field_replaced(name: str, data: st.DataObject) -> None:
    endpoint, valid = ENDPOINTS[name]
    known = [*sorted(valid), *OPTIONAL_FIELDS]
    field = data.draw(st.sampled_from(known))
    body = {**valid, field: data.draw(json_values)}
    run(endpoint, body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    role=st.sampled_from(["user", "assistant", "system", "tool", "developer", "function"]),
    content=json_values,
    extra=st.dictionaries(st.sampled_from(["name", "tool_calls", "tool_call_id", "type"]), json_values, max_size=2),
)
def test_arbitrary_message_contents(role: str, content: Any, extra: dict[str, Any]) -> None:
    message = {"role": role, "content": content, **extra}
    run(_chat, {"model": "gpt-4o", "messages": [message]})
    run(_messages, {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [message]})
    run(_responses, {"model": "gpt-4o", "input": [message]})
    run(_responses, {"model": "gpt-4o", "input": [{"type": role, **extra, "content": content}]})


@pytest.mark.parametrize("tokens", [[100261], [-1], [2**40]])
def test_legacy_prompt_tokens_outside_the_vocabulary_are_refused(tokens: list[int]) -> None:
    with pytest.raises(ApiError) as raised:
        _completions({"model": "gpt-3.5-turbo-instruct", "prompt": tokens})
    assert (raised.value.status, raised.value.param) == (400, "prompt")
