from typing import Any

import orjson
import pytest

from sim import chat, chat_request
from sim.content import TextGenerator, build_vocabulary
from sim.errors import ApiError
from sim.replies import ReplyWriter
from sim.tokens import count_chat_prompt, encoding_for_model

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a mock server?"}]


def generator() -> ReplyWriter:
    return ReplyWriter(TextGenerator(build_vocabulary(), seed=11))


def request(**extra: Any) -> chat_request.ChatRequest:
    return chat_request.parse_chat_request({"model": "gpt-4o", "messages": MESSAGES, **extra})


def test_ignore_eos_makes_the_reply_max_tokens_long_and_finish_with_length() -> None:
    completion = chat.synthesize(request(max_tokens=17, ignore_eos=True), generator(), created_s=1)
    assert completion.completion_tokens == 17
    assert completion.choices[0].finish_reason == "length"
    body = orjson.loads(chat.completion_body(completion))
    text = body["choices"][0]["message"]["content"]
    assert len(encoding_for_model("gpt-4o").encode(text)) == 17
    assert body["usage"]["prompt_tokens"] == count_chat_prompt(encoding_for_model("gpt-4o"), MESSAGES)
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 17


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert request(max_tokens=50, max_completion_tokens=5).max_tokens == 5


def test_max_tokens_caps_a_natural_reply() -> None:
    writer = generator()
    finishes = set()
    for _ in range(200):
        choice = chat.synthesize(request(max_tokens=100), writer, created_s=1).choices[0]
        assert choice.reply is not None and choice.reply.tokens <= 100
        assert choice.finish_reason == "stop" or choice.reply.tokens == 100
        finishes.add(choice.finish_reason)
    assert finishes == {"stop", "length"}


def test_without_limit_the_reply_stops_naturally() -> None:
    completion = chat.synthesize(request(), generator(), created_s=1)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.completion_tokens == len(completion.choices[0].pieces)


def test_body_has_the_openai_shape() -> None:
    body = orjson.loads(chat.completion_body(chat.synthesize(request(n=2, max_tokens=3), generator(), created_s=42)))
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["created"] == 42
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] == 6


def parse_events(events: list[bytes]) -> list[Any]:
    assert events[-1] == b"data: [DONE]\n\n"
    decoded = []
    for event in events[:-1]:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        assert event.count(b"\n") == 2
        decoded.append(orjson.loads(event[6:]))
    return decoded


def test_stream_is_one_token_per_chunk_and_reassembles() -> None:
    completion = chat.synthesize(request(stream=True, max_tokens=9, ignore_eos=True), generator(), created_s=1)
    chunks = parse_events(chat.stream_events(completion, include_usage=False))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(content) == 9
    assert "".join(content) == "".join(completion.choices[0].pieces)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in chunks)
    assert {c["id"] for c in chunks} == {completion.id}


def test_stream_with_include_usage_ends_with_a_usage_chunk() -> None:
    completion = chat.synthesize(
        request(stream=True, stream_options={"include_usage": True}, max_tokens=4, ignore_eos=True),
        generator(),
        created_s=1,
    )
    chunks = parse_events(chat.stream_events(completion, include_usage=True))
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": MESSAGES}, None, None),
        ({"model": "gpt-4o"}, "messages", "missing_required_parameter"),
        ({"model": "gpt-4o", "messages": []}, "messages", "empty_array"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"model": "gpt-4o", "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        ({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": "5"}, "max_tokens", "invalid_type"),
        ({"model": "gpt-4o", "messages": MESSAGES, "stream": "yes"}, "stream", "invalid_type"),
        (
            {"model": "gpt-4o", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            "stream_options",
            "invalid_value",
        ),
        ({"model": "gpt-4o", "messages": MESSAGES, "n": 1000}, "n", "integer_above_max_value"),
        ({"model": 4, "messages": MESSAGES}, "model", "invalid_type"),
        ([1, 2], None, None),
    ],
)
def test_bad_requests_get_openai_errors(body: Any, param: str | None, code: str | None) -> None:
    with pytest.raises(ApiError) as raised:
        chat_request.parse_chat_request(body)
    assert raised.value.status == 400
    assert raised.value.error_type == "invalid_request_error"
    assert (raised.value.param, raised.value.code) == (param, code)
