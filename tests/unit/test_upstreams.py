"""The pure parts of passthrough: the upstreams section, cassette keys, the cassette file format."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sim.upstreams import (
    Cassette,
    CassetteError,
    EventSplitter,
    Recording,
    Upstream,
    UpstreamConfigError,
    cassette_key,
    decode_cassette,
    encode_cassette,
    kept_headers,
    parse_miss_policy,
    parse_upstreams,
    request_is_stream,
)

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def body(document: Any) -> bytes:
    return orjson.dumps(document)


def test_a_valid_section_becomes_frozen_upstreams_in_order() -> None:
    upstreams = parse_upstreams(
        [
            {"name": "primary", "base_url": "https://api.openai.com/v1/", "api_key": "sk-1"},
            {"name": "backup", "base_url": "http://127.0.0.1:9000/v1", "provider": "anthropic"},
        ]
    )
    assert upstreams == (
        Upstream("primary", "https://api.openai.com/v1", "sk-1"),
        Upstream("backup", "http://127.0.0.1:9000/v1", None, "anthropic"),
    )
    assert upstreams[0].url_for("/chat/completions") == "https://api.openai.com/v1/chat/completions"
    assert upstreams[1].serves("anthropic") and not upstreams[1].serves("openai")
    assert upstreams[0].serves("openai") and upstreams[0].serves("anthropic")
    with pytest.raises(AttributeError):
        upstreams[0].name = "x"  # type: ignore[misc]


def test_the_api_key_stays_out_of_reprs() -> None:
    assert "sk-secret" not in repr(parse_upstreams([{"name": "a", "base_url": "http://h/v1", "api_key": "sk-secret"}]))


def test_every_bad_field_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(UpstreamConfigError) as caught:
        parse_upstreams(
            [
                {"name": "a", "base_url": "http://ok/v1"},
                {"name": "b", "base_url": "ftp://nope"},
                {"name": "a", "base_url": "not a url", "api_key": 7, "color": "red"},
                "just a string",
                {"base_url": "https://ok", "provider": "google"},
            ]
        )
    assert caught.value.problems == (
        "upstreams[1].base_url: must be an http(s) URL",
        "upstreams[2].color: unknown field",
        "upstreams[2].name: 'a' is already the name of upstreams[0]",
        "upstreams[2].base_url: must be an http(s) URL",
        "upstreams[2].api_key: must be a non-empty string when given",
        "upstreams[3]: must be a mapping with name and base_url",
        "upstreams[4].name: must be a non-empty string",
        "upstreams[4].provider: must be one of openai, anthropic",
    )
    assert str(caught.value).startswith("upstreams[1].base_url: must be an http(s) URL; ")


def test_the_section_must_be_a_list_and_may_be_absent() -> None:
    assert parse_upstreams(None) == ()
    with pytest.raises(UpstreamConfigError, match=r"^upstreams: must be a list"):
        parse_upstreams({"name": "a"})


def test_miss_policy() -> None:
    assert parse_miss_policy("error") == "error"
    assert parse_miss_policy("passthrough") == "passthrough"
    with pytest.raises(UpstreamConfigError, match="replay_miss: must be one of error, passthrough"):
        parse_miss_policy("ignore")


def test_the_key_ignores_how_a_request_asks() -> None:
    plain = cassette_key("openai", "/chat/completions", body(CHAT))
    assert plain == cassette_key("openai", "/chat/completions", body({**CHAT, "stream": True}))
    assert plain == cassette_key(
        "openai",
        "/chat/completions",
        body({"stream": False, "user": "u-1", "temperature": 0.3, "metadata": {"a": "b"}, **CHAT}),
    )
    # Key order and whitespace are not part of what is asked.
    assert plain == cassette_key(
        "openai", "/chat/completions", b'{ "messages": [ {"content": "hi", "role": "user"} ], "model": "gpt-4o" }'
    )
    assert plain.startswith("openai-") and len(plain) == len("openai-") + 40


def test_the_key_follows_what_a_request_asks() -> None:
    plain = cassette_key("openai", "/chat/completions", body(CHAT))
    other_words = {**CHAT, "messages": [{"role": "user", "content": "hello"}]}
    assert plain != cassette_key("openai", "/chat/completions", body(other_words))
    assert plain != cassette_key("openai", "/chat/completions", body({**CHAT, "model": "gpt-4o-mini"}))
    assert plain != cassette_key("openai", "/completions", body(CHAT))
    assert plain != cassette_key("anthropic", "/chat/completions", body(CHAT))
    assert plain != cassette_key("openai", "/chat/completions", body({**CHAT, "tools": [{"type": "function"}]}))
    assert cassette_key("openai", "/responses", body({"model": "m", "input": "a"})) != cassette_key(
        "openai", "/responses", body({"model": "m", "input": "b"})
    )
    assert cassette_key("anthropic", "/messages", body({**CHAT, "system": "be terse"})) != cassette_key(
        "anthropic", "/messages", body(CHAT)
    )
    assert cassette_key("openai", "/x", b"not json") != cassette_key("openai", "/x", b"not json either")


def test_stream_flag() -> None:
    assert request_is_stream(body({**CHAT, "stream": True}))
    assert not request_is_stream(body({**CHAT, "stream": "yes"}))
    assert not request_is_stream(body(CHAT)) and not request_is_stream(b"[1]") and not request_is_stream(b"")


def test_a_cassette_round_trips_through_its_file_format() -> None:
    events = (b'data: {"a":1}\n\n', b"data: [DONE]\n\n")
    cassette = Cassette(
        "openai-abc",
        "openai",
        "/chat/completions",
        "gpt-4o",
        answer=Recording(200, (("content-type", "application/json"),), b'{"ok":true}'),
        stream_answer=Recording(200, (("content-type", "text/event-stream; charset=utf-8"),), events=events),
    )
    data = encode_cassette(cassette)
    assert decode_cassette(data) == cassette
    document = orjson.loads(data)
    # Text stays readable in the file.
    assert document["answers"]["stream"]["events"] == ['data: {"a":1}\n\n', "data: [DONE]\n\n"]
    assert document["request"] == {"provider": "openai", "endpoint": "/chat/completions", "model": "gpt-4o"}
    assert cassette.recording(stream=True) is cassette.stream_answer
    assert cassette.recording(stream=False) is cassette.answer


def test_bytes_that_are_not_text_round_trip_as_base64() -> None:
    cassette = Cassette("k", "openai", "/x", None).with_recording(Recording(500, (), b"\xff\x00 binary"), stream=False)
    data = encode_cassette(cassette)
    assert orjson.loads(data)["answers"]["json"]["body"] == {"base64": "/wAgYmluYXJ5"}
    assert decode_cassette(data) == cassette
    assert decode_cassette(data).recording(stream=True) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not JSON"),
        (b'{"format": 2}', "format: must be 1"),
        (b'{"format": 1, "key": "k", "request": {"provider": "openai"}, "answers": {}}', "request: must name"),
        (
            b'{"format":1,"key":"k","request":{"provider":"o","endpoint":"/x","model":null},'
            b'"answers":{"json":{"status":99}}}',
            r"answers\.json\.status",
        ),
        (
            b'{"format":1,"key":"k","request":{"provider":"o","endpoint":"/x","model":null},'
            b'"answers":{"stream":{"status":200,"events":[{"base64":"***"}]}}}',
            r"answers\.stream\.events\[0\]: not valid base64",
        ),
    ],
)
def test_a_damaged_cassette_names_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(CassetteError, match=message):
        decode_cassette(data)


def test_only_the_content_type_is_kept() -> None:
    assert kept_headers([("Content-Type", "application/json"), ("x-request-id", "req_1"), ("date", "now")]) == (
        ("content-type", "application/json"),
    )


def test_the_splitter_cuts_chunks_into_whole_events() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n") == []
    assert splitter.feed(b"\ndata: 2\n\nevent: x\r\ndata: 3\r\n\r\ndata: ") == [
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"event: x\r\ndata: 3\r\n\r\n",
    ]
    assert splitter.feed(b"4") == []
    assert splitter.flush() == b"data: 4"
    assert splitter.flush() == b""
