"""The official openai SDK and plain HTTP against a real two-worker cluster."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import orjson
import pytest

from sim.tokens import count_chat_prompt, encoding_for_model
from tests.integration.conftest import Server, wait_for

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in Europe, please."},
]


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-understudy", max_retries=0)


# vLLM's ignore_eos, which load generators send: the reply is exactly max_tokens long.
EXACT = {"ignore_eos": True}


def tokens(model: str, text: str) -> int:
    return len(encoding_for_model(model).encode(text))


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "gpt-5"])
def test_non_streaming_reply_is_sized_and_counted_exactly(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=23, extra_body=EXACT
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-understudy-worker"] in {"w0", "w1"}
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.role == "assistant"
    assert completion.model == model
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 23 == tokens(model, choice.message.content or "")
    assert completion.usage.prompt_tokens == count_chat_prompt(encoding_for_model(model), MESSAGES)


def test_max_tokens_caps_a_natural_length_reply(client: openai.OpenAI) -> None:
    finishes = set()
    for _ in range(30):
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
        assert completion.usage is not None and completion.usage.completion_tokens <= 100
        finish = completion.choices[0].finish_reason
        assert finish == "stop" or completion.usage.completion_tokens == 100
        finishes.add(finish)
    assert "stop" in finishes


def test_max_completion_tokens_and_natural_length(client: openai.OpenAI) -> None:
    capped = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=5, extra_body=EXACT
    )
    assert capped.usage is not None and capped.usage.completion_tokens == 5
    natural = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert natural.choices[0].finish_reason == "stop"
    text = natural.choices[0].message.content or ""
    assert natural.usage is not None and natural.usage.completion_tokens == tokens("gpt-4o", text) >= 8
    assert text.endswith(".")


def test_streaming_deltas_reassemble(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=40, stream=True, extra_body=EXACT
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert tokens("gpt-4o", text) == 40
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1


def test_streaming_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4.1",
        messages=MESSAGES,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=EXACT,
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert last.usage.completion_tokens == 12 == tokens("gpt-4.1", text)
    assert last.usage.prompt_tokens == count_chat_prompt(encoding_for_model("gpt-4.1"), MESSAGES)


def test_stream_helper_builds_the_final_completion(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta" and event.delta]
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "".join(deltas)
    assert final.usage is not None and final.usage.completion_tokens == len(deltas)


def test_several_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4, n=3, extra_body=EXACT)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert completion.usage is not None and completion.usage.completion_tokens == 12


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/openai/v1/chat/completions"])
def test_sse_wire_format_on_every_alias(server: Server, path: str) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 6, "stream": True, "ignore_eos": True}
    with server.http() as http:
        response = http.post(path, json=body, headers={"accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-understudy-worker"] in {"w0", "w1"}
    assert b"\r" not in response.content
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    payloads = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-2]]
    assert len(payloads) == 1 + 6 + 1
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)


def test_models_list_and_retrieve(client: openai.OpenAI, server: Server) -> None:
    models = client.models.list().data
    assert "gpt-4o" in {model.id for model in models}
    with server.http() as http:
        entries = http.get("/v1/models").json()["data"]
    assert all(set(entry) >= {"id", "object", "created", "owned_by", "root"} for entry in entries)
    assert all(entry["root"] == entry["id"] and entry["object"] == "model" for entry in entries)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_health_answers_without_auth_and_with_headers(server: Server) -> None:
    with server.http() as http:
        response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}
    assert response.headers["x-request-id"]
    assert response.headers["x-understudy-worker"] in {"w0", "w1"}


def test_sdk_sees_openai_shaped_validation_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert raised.value.status_code == 400
    assert raised.value.code == "empty_array"
    assert raised.value.param == "messages"
    assert raised.value.response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400),
        ("POST", "/v1/chat/completions", b"[]", 400),
        ("POST", "/v1/no/such/thing", b"{}", 404),
        ("GET", "/v1/chat/completions", b"", 405),
        ("POST", "/v1/chat/completions", b"x" * (50 * 1024 * 1024 + 1), 413),
    ],
)
def test_bad_input_gets_an_openai_error_and_the_server_lives(
    server: Server, method: str, path: str, content: bytes, status: int
) -> None:
    with server.http() as http:
        response = http.request(method, path, content=content, headers={"content-type": "application/json"})
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        assert response.headers["x-request-id"].startswith("req_")
        if status == 405:
            assert response.headers["allow"] == "POST"
        assert http.get("/health").status_code == 200


def test_burst_is_counted_cluster_wide_within_a_second(fresh_server: Callable[..., Server]) -> None:
    # A cluster of its own: on the shared one, earlier tests' last reports may still be on their way.
    server = fresh_server()
    before = 0
    burst = 60
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 3}

    def one(_: int) -> str:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = http.post("/v1/chat/completions", json=body)
            assert response.status_code == 200
            return response.headers["x-understudy-worker"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(burst)))
    stats = wait_for(
        lambda: (s := server.stats())["total_requests"] >= before + burst and s,
        timeout_s=1.0,
        what="total_requests to count the burst",
    )
    assert stats["total_requests"] == before + burst
    assert stats["mocked_requests"] >= burst
    assert isinstance(stats["rule_hits"], dict)
    assert {worker["id"] for worker in stats["workers"]} == {"w0", "w1"}
    assert all(set(w) >= {"id", "pid", "alive", "requests"} and w["alive"] for w in stats["workers"])
    assert sum(worker["requests"] for worker in stats["workers"]) == stats["total_requests"]
