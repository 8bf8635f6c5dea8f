"""Passthrough to real upstreams: a real understudy as the upstream, tiny trio HTTP stubs for the failures.

The tests drive ``workers.upstream.Passthrough`` directly under trio, as a
worker would. Every wait is bounded by ``trio.fail_after``; the streaming test
proves events are relayed as they arrive by holding the stub's second event
back until the first one has come through.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from sim.upstreams import Upstream, cassette_key
from tests.integration.conftest import Server, free_port, start_server
from workers.http import Reply, respond
from workers.upstream import ForwardResult, Passthrough

TEXT = "Words the upstream said."
STEP_S = 10.0  # the bound on any single step against a live process
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
OPENAI_HEADERS = {"content-type": "application/json", "authorization": "Bearer caller-key"}
ANTHROPIC_HEADERS = {"content-type": "application/json", "x-api-key": "caller-key", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def upstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("upstream"), "--content-mode", "fixed", "--content-text", TEXT, workers=1
    )
    yield running
    running.process.stop()


def local(server: Server, name: str = "local") -> Upstream:
    return Upstream(name, server.url + "/v1")


def dead(name: str = "dead") -> Upstream:
    return Upstream(name, f"http://127.0.0.1:{free_port()}/v1")


@asynccontextmanager
async def passthrough(*upstreams: Upstream, **options: Any) -> AsyncIterator[Passthrough]:
    forwarder = Passthrough(upstreams, **{"timeout_s": STEP_S, **options})
    try:
        yield forwarder
    finally:
        await forwarder.aclose()


async def forward(forwarder: Passthrough, provider: str, body: dict[str, Any]) -> ForwardResult:
    path, headers = (
        ("/messages", ANTHROPIC_HEADERS) if provider == "anthropic" else ("/chat/completions", OPENAI_HEADERS)
    )
    with trio.fail_after(STEP_S):
        return await forwarder.forward(provider=provider, path=path, body=orjson.dumps(body), headers=headers)


async def drain(result: ForwardResult) -> list[bytes]:
    assert result.events is not None
    with trio.fail_after(STEP_S):
        return [event async for event in result.events]


def header(result: ForwardResult, name: bytes) -> bytes | None:
    return next((value for key, value in result.headers if key == name), None)


def deltas(events: list[bytes]) -> str:
    text = ""
    for event in events:
        data = event.decode().split("data: ", 1)[1].strip()
        if data != "[DONE]":
            for choice in orjson.loads(data)["choices"]:
                text += choice["delta"].get("content") or ""
    return text


# A tiny HTTP/1.1 server on trio: each connection reads one request and hands it to a behaviour.


@dataclass
class StubRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[trio.SocketStream, StubRequest], Awaitable[None]]


@dataclass
class Stub:
    upstream: Upstream
    requests: list[StubRequest] = field(default_factory=list)


async def start_stub(nursery: trio.Nursery, behaviour: Behaviour, name: str = "stub", **extra: Any) -> Stub:
    stub: Stub

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = await read_request(stream)
            stub.requests.append(request)
            await behaviour(stream, request)

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    stub = Stub(Upstream(name, f"http://127.0.0.1:{port}/v1", **extra))
    return stub


async def read_request(stream: trio.SocketStream) -> StubRequest:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, "client closed before sending a whole request"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += await stream.receive_some(65536)
    return StubRequest(method, target, headers, body)


def answer(status: int, document: Any) -> Behaviour:
    async def behave(stream: trio.SocketStream, request: StubRequest) -> None:
        body = orjson.dumps(document)
        await stream.send_all(
            f"HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"x-request-id: req_stub\r\nconnection: close\r\n\r\n".encode()
            + body
        )

    return behave


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
)


# Forwarding


async def test_a_chat_completion_is_forwarded(upstream_server: Server) -> None:
    async with passthrough(local(upstream_server)) as forwarder:
        result = await forward(forwarder, "openai", CHAT)
    assert result.status == 200 and result.events is None
    assert result.content_type == b"application/json"
    completion = orjson.loads(result.body)
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == TEXT
    assert header(result, b"x-request-id") is not None  # the upstream's own request id reaches the client
    assert header(result, b"x-understudy-upstream") == b"local"
    assert header(result, b"content-length") is None  # re-framed by whoever writes the answer


async def test_an_anthropic_message_is_forwarded(upstream_server: Server) -> None:
    async with passthrough(local(upstream_server)) as forwarder:
        result = await forward(forwarder, "anthropic", MESSAGES)
    assert result.status == 200
    message = orjson.loads(result.body)
    assert message["type"] == "message" and message["content"][0]["text"] == TEXT
    assert header(result, b"request-id") is not None


async def test_a_stream_is_relayed_as_whole_sse_events(upstream_server: Server) -> None:
    async with passthrough(local(upstream_server)) as forwarder:
        result = await forward(forwarder, "openai", {**CHAT, "stream": True})
        events = await drain(result)
    assert result.status == 200 and result.content_type.startswith(b"text/event-stream")
    assert len(events) > 3
    assert all(event.startswith(b"data: ") and event.endswith(b"\n\n") for event in events)
    assert events[-1] == b"data: [DONE]\n\n"
    assert deltas(events) == TEXT
    # The same stream asked directly has the same events, bar ids and timestamps.
    with httpx.Client(base_url=upstream_server.url, timeout=STEP_S) as client:
        direct = client.post("/v1/chat/completions", json={**CHAT, "stream": True}).content
    assert len(direct.split(b"\n\n")) - 1 == len(events)
    assert deltas([part + b"\n\n" for part in direct.split(b"\n\n") if part]) == TEXT


async def test_stream_events_reach_the_client_as_they_arrive(nursery: trio.Nursery) -> None:
    second_may_go = trio.Event()

    async def behave(stream: trio.SocketStream, request: StubRequest) -> None:
        await stream.send_all(SSE_HEAD + chunk(b"data: 1\n"))  # an event split over two writes
        await stream.send_all(chunk(b"\n"))
        await second_may_go.wait()
        await stream.send_all(chunk(b"data: 2\n\n") + b"0\r\n\r\n")

    stub = await start_stub(nursery, behave)
    async with passthrough(stub.upstream) as forwarder:
        result = await forward(forwarder, "openai", {**CHAT, "stream": True})
        assert result.events is not None
        with trio.fail_after(STEP_S):
            assert await result.events.__anext__() == b"data: 1\n\n"
        second_may_go.set()
        assert await drain(result) == [b"data: 2\n\n"]


async def test_closing_a_stream_never_read_releases_the_upstream(nursery: trio.Nursery) -> None:
    hung_up = trio.Event()

    async def behave(stream: trio.SocketStream, request: StubRequest) -> None:
        await stream.send_all(SSE_HEAD + chunk(b"data: 1\n\n"))
        while await stream.receive_some(65536):
            pass
        hung_up.set()

    stub = await start_stub(nursery, behave)
    async with passthrough(stub.upstream) as forwarder:
        result = await forward(forwarder, "openai", {**CHAT, "stream": True})
        assert result.events is not None
        await result.events.aclose()  # e.g. the client went away before the first event
        with trio.fail_after(STEP_S):
            await hung_up.wait()


async def test_credentials_are_replaced_and_hop_by_hop_headers_dropped(nursery: trio.Nursery) -> None:
    stub = await start_stub(nursery, answer(200, {"ok": True}), api_key="sk-upstream")
    caller = {
        "content-type": "application/json",
        "authorization": "Bearer caller-key",
        "x-api-key": "caller-key",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "tools-2024-04-04",
        "connection": "keep-alive, x-private",
        "x-private": "for this hop only",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "host": "understudy.example",
        "x-stainless-retry-count": "0",
    }
    async with passthrough(stub.upstream) as forwarder:
        with trio.fail_after(STEP_S):
            await forwarder.forward(provider="anthropic", path="/messages", body=b"{}", headers=caller)
            await forwarder.forward(provider="openai", path="/chat/completions", body=b"{}", headers=caller)
    anthropic, openai = (request.headers for request in stub.requests)
    assert stub.requests[0].target == "/v1/messages" and stub.requests[1].target == "/v1/chat/completions"
    assert anthropic["x-api-key"] == "sk-upstream" and "authorization" not in anthropic
    assert openai["authorization"] == "Bearer sk-upstream" and "x-api-key" not in openai
    for sent in (anthropic, openai):
        assert sent["anthropic-version"] == "2023-06-01" and sent["anthropic-beta"] == "tools-2024-04-04"
        assert sent["content-type"] == "application/json" and sent["x-stainless-retry-count"] == "0"
        assert sent["host"].startswith("127.0.0.1:")
        assert "x-private" not in sent and "keep-alive" not in sent and "te" not in sent
        assert sent.get("connection", "keep-alive") == "keep-alive"


async def test_an_upstream_without_a_key_gets_the_callers(nursery: trio.Nursery) -> None:
    stub = await start_stub(nursery, answer(200, {"ok": True}))
    async with passthrough(stub.upstream) as forwarder:
        await forward(forwarder, "openai", CHAT)
    assert stub.requests[0].headers["authorization"] == "Bearer caller-key"


# Fallbacks


async def test_a_dead_upstream_is_skipped(upstream_server: Server) -> None:
    async with passthrough(dead(), local(upstream_server)) as forwarder:
        result = await forward(forwarder, "openai", CHAT)
    assert result.status == 200 and header(result, b"x-understudy-upstream") == b"local"


async def test_a_silent_upstream_times_out_and_is_skipped(nursery: trio.Nursery, upstream_server: Server) -> None:
    async def never(stream: trio.SocketStream, request: StubRequest) -> None:
        await trio.sleep_forever()

    stub = await start_stub(nursery, never, "silent")
    async with passthrough(stub.upstream, local(upstream_server), timeout_s=0.5) as forwarder:
        result = await forward(forwarder, "anthropic", MESSAGES)
    assert result.status == 200 and header(result, b"x-understudy-upstream") == b"local"
    assert len(stub.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503, 529])
async def test_429_and_5xx_fall_back(nursery: trio.Nursery, upstream_server: Server, status: int) -> None:
    stub = await start_stub(nursery, answer(status, {"error": {"message": "busy"}}), "busy")
    async with passthrough(stub.upstream, local(upstream_server)) as forwarder:
        result = await forward(forwarder, "openai", {**CHAT, "stream": True})
        events = await drain(result)
    assert len(stub.requests) == 1
    assert result.status == 200 and header(result, b"x-understudy-upstream") == b"local"
    assert deltas(events) == TEXT


async def test_other_4xx_are_answers_not_fallbacks(nursery: trio.Nursery, upstream_server: Server) -> None:
    stub = await start_stub(nursery, answer(200, {"never": "asked"}))
    # The real upstream, at a path it does not serve: its own 404.
    wrong_path = Upstream("wrong-path", upstream_server.url + "/nowhere/v1")
    async with passthrough(wrong_path, stub.upstream) as forwarder:
        result = await forward(forwarder, "openai", CHAT)
    assert result.status == 404 and orjson.loads(result.body)["error"]["code"] == "unknown_url"
    assert header(result, b"x-understudy-upstream") == b"wrong-path"
    assert stub.requests == []


async def test_when_all_fail_the_last_answer_is_returned(nursery: trio.Nursery) -> None:
    first = await start_stub(nursery, answer(500, {"error": {"message": "first"}}), "first")
    last = await start_stub(nursery, answer(503, {"error": {"message": "last"}}), "last")
    async with passthrough(first.upstream, last.upstream, dead()) as forwarder:
        result = await forward(forwarder, "openai", CHAT)
    assert result.status == 503 and orjson.loads(result.body) == {"error": {"message": "last"}}
    assert header(result, b"x-request-id") == b"req_stub"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_when_none_answers_it_is_a_502_in_the_providers_shape(provider: str) -> None:
    async with passthrough(dead("a"), dead("b")) as forwarder:
        result = await forward(forwarder, provider, MESSAGES if provider == "anthropic" else CHAT)
    assert result.status == 502
    error = orjson.loads(result.body)
    if provider == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["type"] == "server_error" and error["error"]["code"] == "upstream_unreachable"


async def test_upstreams_for_the_other_provider_are_not_asked(upstream_server: Server, nursery: trio.Nursery) -> None:
    stub = await start_stub(nursery, answer(200, {}), "openai-only", provider="openai")
    async with passthrough(stub.upstream, local(upstream_server)) as forwarder:
        result = await forward(forwarder, "anthropic", MESSAGES)
    assert result.status == 200 and stub.requests == []


async def test_a_stream_broken_mid_way_ends_with_an_error_event_and_is_not_recorded(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def behave(stream: trio.SocketStream, request: StubRequest) -> None:
        await stream.send_all(SSE_HEAD + chunk(b"event: ping\ndata: {}\n\n"))  # then hang up mid-body

    stub = await start_stub(nursery, behave)
    async with passthrough(stub.upstream, record_dir=tmp_path) as forwarder:
        result = await forward(forwarder, "anthropic", {**MESSAGES, "stream": True})
        events = await drain(result)
    assert events[0] == b"event: ping\ndata: {}\n\n"
    assert events[1].startswith(b"event: error\ndata: ")
    assert orjson.loads(events[1].split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    assert list(tmp_path.iterdir()) == []


# Record and replay


async def test_recorded_answers_replay_with_the_upstream_stopped(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--content-mode", "fixed", "--content-text", TEXT, workers=1)
    cassettes = tmp_path / "cassettes"
    asked = [("openai", CHAT), ("openai", {**CHAT, "stream": True}), ("anthropic", MESSAGES)]
    asked.append(("anthropic", {**MESSAGES, "stream": True}))
    recorded: list[tuple[int, bytes, bytes, list[bytes] | None]] = []
    try:
        async with passthrough(local(server), record_dir=cassettes) as forwarder:
            for provider, body in asked:
                result = await forward(forwarder, provider, body)
                events = await drain(result) if result.events is not None else None
                recorded.append((result.status, result.content_type, result.body, events))
    finally:
        server.process.stop()
    # One file per question and shape: no worker ever rewrites another's answer.
    chat_key = cassette_key("openai", "/chat/completions", orjson.dumps(CHAT))
    messages_key = cassette_key("anthropic", "/messages", orjson.dumps(MESSAGES))
    assert sorted(path.name for path in cassettes.iterdir()) == sorted(
        [f"{chat_key}.json", f"{chat_key}.stream.json", f"{messages_key}.json", f"{messages_key}.stream.json"]
    )
    async with passthrough(local(server), replay_dir=cassettes) as forwarder:
        for (provider, body), (status, content_type, answer_body, events) in zip(asked, recorded, strict=True):
            result = await forward(forwarder, provider, body)
            assert header(result, b"x-understudy-upstream") == b"replay"
            assert (result.status, result.content_type, result.body) == (status, content_type, answer_body)
            assert (await drain(result) if result.events is not None else None) == events
    assert events is not None and len(events) > 3


async def test_both_shapes_recorded_at_once_are_both_kept(upstream_server: Server, tmp_path: Path) -> None:
    # Two recorders (as two workers) answering the same question in both shapes at the same moment.
    async with (
        passthrough(local(upstream_server), record_dir=tmp_path) as first,
        passthrough(local(upstream_server), record_dir=tmp_path) as second,
    ):

        async def ask(forwarder: Passthrough, body: dict[str, Any]) -> None:
            result = await forward(forwarder, "openai", body)
            if result.events is not None:
                await drain(result)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(ask, first, CHAT)
                nursery.start_soon(ask, second, {**CHAT, "stream": True})
    async with passthrough(dead(), replay_dir=tmp_path) as forwarder:
        plain = await forward(forwarder, "openai", CHAT)
        streamed = await forward(forwarder, "openai", {**CHAT, "stream": True})
        events = await drain(streamed)
    assert header(plain, b"x-understudy-upstream") == b"replay" and plain.status == 200
    assert header(streamed, b"x-understudy-upstream") == b"replay" and events[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_replay_miss_is_a_404_by_default(tmp_path: Path, provider: str) -> None:
    async with passthrough(dead(), replay_dir=tmp_path) as forwarder:
        result = await forward(forwarder, provider, MESSAGES if provider == "anthropic" else CHAT)
    assert result.status == 404
    error = orjson.loads(result.body)
    if provider == "anthropic":
        assert error["error"]["type"] == "not_found_error"
    else:
        assert error["error"]["code"] == "cassette_not_found"
    assert "no recorded answer" in result.body.decode()


async def test_a_replay_miss_can_pass_through_and_be_recorded(upstream_server: Server, tmp_path: Path) -> None:
    options = {"replay_dir": tmp_path, "record_dir": tmp_path, "miss": "passthrough"}
    async with passthrough(local(upstream_server), **options) as forwarder:
        first = await forward(forwarder, "openai", CHAT)
        again = await forward(forwarder, "openai", CHAT)
        stream_miss = await forward(forwarder, "openai", {**CHAT, "stream": True})
        await drain(stream_miss)
    assert header(first, b"x-understudy-upstream") == b"local"
    assert header(again, b"x-understudy-upstream") == b"replay" and again.body == first.body
    # The stream had no recording yet under the same key: it went to the upstream.
    assert header(stream_miss, b"x-understudy-upstream") == b"local"
    # Both shapes on file, and no temporary files left.
    assert sorted(path.name.split(".", 1)[1] for path in tmp_path.iterdir()) == ["json", "stream.json"]


async def test_a_damaged_cassette_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / f"{cassette_key('openai', '/chat/completions', orjson.dumps(CHAT))}.json").write_bytes(b"{")
    async with passthrough(replay_dir=tmp_path) as forwarder:
        result = await forward(forwarder, "openai", CHAT)
    assert result.status == 404


# Writing the answer to an ASGI client


async def test_a_relayed_stream_is_sent_event_by_event_and_closed_when_the_client_goes() -> None:
    closed = trio.Event()

    async def events() -> AsyncGenerator[bytes, None]:
        try:
            for event in (b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"):
                yield event
        finally:
            closed.set()

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 3:
            raise OSError("client went away")

    result = ForwardResult(200, b"text/event-stream", ((b"x-request-id", b"r"),), events=events())
    reply = Reply(result.status, result.body, result.content_type, result.events, result.headers)  # as the app does
    with pytest.raises(OSError):
        await respond(send, reply, [(b"x-understudy-worker", b"w0")])
    assert closed.is_set()
    assert sent[0]["headers"][:3] == [
        (b"content-type", b"text/event-stream"),
        (b"x-understudy-worker", b"w0"),
        (b"x-request-id", b"r"),
    ]
    assert [message.get("body") for message in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n"]
