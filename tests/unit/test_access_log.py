"""Access logs: the JSON access line and the Bifrost-style ``--log-raw`` dump."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.access_log import RAW_BODY_LIMIT, access_record, go_log_prefix, raw_request, raw_response

AT = 1_700_000_000.1234  # 2023-11-14T22:13:20.123Z
FIELDS: dict[str, Any] = {
    "request_id": "req_01",
    "worker": "w3",
    "method": "POST",
    "path": "/v1/chat/completions",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "status": 200,
    "stream": True,
    "prompt_tokens": 12,
    "completion_tokens": 34,
    "latency_ms": 123.4567,
    "ttft_ms": 8.765,
    "retry_count": "2",
    "client": "10.0.0.7",
    "at": AT,
}


def record(**changes: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(access_record(**{**FIELDS, **changes}))
    return parsed


def test_access_record_for_a_known_request() -> None:
    line = access_record(**FIELDS, rate_limited=True, fault="stream_cut", rule="slow-gpt", cost_usd=0.000123)

    assert orjson.loads(line) == {
        "ts": "2023-11-14T22:13:20.123Z",
        "level": "info",
        "event": "access",
        "request_id": "req_01",
        "worker": "w3",
        "method": "POST",
        "path": "/v1/chat/completions",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": 200,
        "stream": True,
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "latency_ms": 123.46,
        "ttft_ms": 8.77,
        "retry_count": 2,
        "client": "10.0.0.7",
        "rate_limited": True,
        "fault": "stream_cut",
        "rule": "slow-gpt",
        "cost_usd": 0.000123,
    }
    assert list(orjson.loads(line))[:3] == ["ts", "level", "event"]
    assert line.startswith(b'{"ts":"2023-11-14T22:13:20.123Z","level":"info","event":"access",')
    assert not line.endswith(b"\n")


def test_none_fields_are_left_out() -> None:
    line = record(prompt_tokens=None, completion_tokens=None, ttft_ms=None, retry_count=None, client=None)

    for key in ("prompt_tokens", "completion_tokens", "ttft_ms", "retry_count", "client", "fault", "rule", "cost_usd"):
        assert key not in line
    assert line["latency_ms"] == 123.46 and line["rate_limited"] is False


def test_zero_counts_are_kept() -> None:
    line = record(prompt_tokens=0, completion_tokens=0, retry_count="0", cost_usd=0.0)

    assert (line["prompt_tokens"], line["completion_tokens"], line["retry_count"], line["cost_usd"]) == (0, 0, 0, 0.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2), ("0", 0), ("17", 17), ("NOT_GIVEN", None), ("", None), ("-1", None), ("1.5", None), (" 2", None)],
)
def test_retry_count_is_an_int_only_when_the_header_is_decimal(header: str, expected: int | None) -> None:
    assert record(retry_count=header).get("retry_count") == expected


def test_absurd_retry_counts_do_not_break_the_line() -> None:
    assert "retry_count" not in record(retry_count="9" * 30)  # beyond a 64-bit integer
    assert "retry_count" not in record(retry_count="\u0663")  # a decimal digit, but not ASCII


def test_timestamp_rounds_to_the_millisecond_and_carries_into_the_second() -> None:
    assert record(at=0.0)["ts"] == "1970-01-01T00:00:00.000Z"
    assert record(at=1_700_000_000.9996)["ts"] == "2023-11-14T22:13:21.000Z"
    assert record(at=1_700_000_000.5)["ts"] == "2023-11-14T22:13:20.500Z"


def test_a_string_orjson_refuses_is_replaced_not_raised() -> None:
    line = record(model="gpt\ud800x", client="c\udfff")

    assert (line["model"], line["client"]) == ("gpt?x", "c?")


@given(
    latency_ms=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    model=st.text(),
    retry=st.none() | st.text(),
)
def test_any_record_is_one_json_line(latency_ms: float, model: str, retry: str | None) -> None:
    line = access_record(**{**FIELDS, "latency_ms": latency_ms, "model": model, "retry_count": retry})

    assert b"\n" not in line
    assert orjson.loads(line)["latency_ms"] == round(latency_ms, 2)


REQUEST_HEADERS = [
    (b"host", b"localhost:8000"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.54.0"),
    (b"x-stainless-retry-count", b"0"),
    (b"content-length", b"23"),
]


def test_raw_request_matches_the_bifrost_layout() -> None:
    text = raw_request("POST", "/v1/chat/completions", REQUEST_HEADERS, b'{"model":"gpt-4o-mini"}')

    assert text == (
        "--- Raw Request ---\n"
        "POST http://localhost:8000/v1/chat/completions HTTP/1.1\n"
        "Host: localhost:8000\n"
        "Content-Length: 23\n"
        "Content-Type: application/json\n"
        "User-Agent: OpenAI/Python 1.54.0\n"
        "Accept: application/json\n"
        "X-Stainless-Retry-Count: 0\n"
        "--- Body ---\n"
        '{"model":"gpt-4o-mini"}\n'
        "--- End Request ---\n"
    )


def test_the_log_prefix_starts_each_log_call_not_each_line() -> None:
    prefix = "2025/01/02 03:04:05 "
    text = raw_request("POST", "/v1/messages?beta=true", [(b"host", b"h:1")], b"a\nb", prefix=prefix)

    assert text == (
        f"{prefix}--- Raw Request ---\n"
        "POST http://h:1/v1/messages?beta=true HTTP/1.1\n"
        f"{prefix}Host: h:1\n"
        f"{prefix}--- Body ---\n"
        "a\n"
        "b\n"
        f"{prefix}--- End Request ---\n"
    )


def test_go_log_prefix_is_date_and_time_then_a_space() -> None:
    prefix = go_log_prefix(AT)

    assert len(prefix) == len("2023/11/14 22:13:20 ") and prefix[4] == "/" and prefix.endswith(":20 ")


def test_raw_request_puts_cookies_together_and_connection_close_last() -> None:
    headers = [
        (b"connection", b"close"),
        (b"cookie", b"a=1"),
        (b"x-b", b"2"),
        (b"cookie", b"c=3"),
        (b"host", b"h"),
    ]

    lines = raw_request("GET", "/v1/models", headers, b"").splitlines()

    assert lines[2:6] == ["Host: h", "Cookie: a=1; c=3", "X-B: 2", "Connection: close"]


def test_raw_request_without_host_shows_the_target_as_received() -> None:
    assert raw_request("GET", "/health", [], b"", http_version="1.0").splitlines()[:2] == [
        "--- Raw Request ---",
        "GET /health HTTP/1.0",
    ]


def test_raw_response_for_a_json_error() -> None:
    body = b'{"error":{"message":"Rate limit exceeded"}}\n'
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"content-length", b"45")]

    assert raw_response(429, headers, body) == (
        "--- Raw Response ---\n"
        "HTTP/1.1 429 Too Many Requests\n"
        "Content-Length: 45\n"
        "Content-Type: application/json\n"
        "Retry-After: 1\n"
        "--- Body ---\n"
        '{"error":{"message":"Rate limit exceeded"}}\n'
        "--- End Response ---\n"
    )


def test_a_streamed_body_ending_in_a_blank_line_is_printed_as_sent() -> None:
    events = b'data: {"x":1}\n\ndata: [DONE]\n\n'

    text = raw_response(200, [(b"content-type", b"text/event-stream")], events)

    assert text.endswith('--- Body ---\ndata: {"x":1}\n\ndata: [DONE]\n\n--- End Response ---\n')


def test_empty_bodies_and_unknown_statuses_print_as_fasthttp_prints_them() -> None:
    assert (
        raw_response(529, [], b"")
        == "--- Raw Response ---\nHTTP/1.1 529 Unknown Status Code\n--- Body --- (empty)\n--- End Response ---\n"
    )
    assert raw_response(422, [], b"x").splitlines()[1] == "HTTP/1.1 422 Unprocessable Entity"
    assert raw_request("GET", "/", [], b"").splitlines()[-2] == "--- Body --- (empty)"


def test_binary_and_invalid_utf8_bodies_do_not_raise() -> None:
    junk = bytes(range(256)) + b"\xff\xfe\xc3"

    request = raw_request("POST", "/v1/embeddings", [(b"x-bin", b"\xff")], junk)
    response = raw_response(200, [], junk)

    assert "\ufffd" in request and "X-Bin: \ufffd" in request
    assert response.endswith("\n--- End Response ---\n")


def test_a_large_body_is_cut_with_a_marker() -> None:
    body = b"x" * (RAW_BODY_LIMIT + 1000)

    lines = raw_request("POST", "/v1/chat/completions", [], body).splitlines()

    assert lines[-3:] == ["x" * RAW_BODY_LIMIT, "... (1000 more bytes)", "--- End Request ---"]


def test_the_cut_never_splits_a_character() -> None:
    body = "é".encode() * 10  # two bytes each

    text = raw_response(200, [], body, limit=5)

    assert text.splitlines()[-3:] == ["éé", "... (16 more bytes)", "--- End Response ---"]
    assert "\ufffd" not in text


def test_the_marker_gets_a_line_of_its_own_and_a_body_at_the_limit_is_whole() -> None:
    assert raw_response(200, [], b"ab\ncd", limit=3).splitlines()[-3:] == [
        "ab",
        "... (2 more bytes)",
        "--- End Response ---",
    ]
    assert raw_response(200, [], b"abc", limit=3).splitlines()[-2:] == ["abc", "--- End Response ---"]
    assert raw_response(200, [], b"abc" * 100_000, limit=None).count("more bytes") == 0
