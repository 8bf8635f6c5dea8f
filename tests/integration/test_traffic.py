"""Latency, faults, the 429 timer and cost on a real cluster, measured as a client sees them."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from sim.pricing import default_pricing, format_cost
from tests.integration.conftest import Server, wait_for

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
EXACT = {**CHAT, "max_tokens": 21, "ignore_eos": True}  # exactly 21 tokens: TTFT plus 20 gaps
SDK_EXACT = {**CHAT, "max_tokens": 21, "extra_body": {"ignore_eos": True}}


def config_file(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / f"traffic-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(document))
    return str(path)


def stream_timings(http: httpx.Client, path: str, body: dict[str, Any], is_token: Callable[[str], bool]) -> list[float]:
    """Seconds from sending the request to each token event, as a client measures them."""
    start = time.perf_counter()
    arrivals = []
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if is_token(line):
                arrivals.append(time.perf_counter() - start)
    return arrivals


def chat_token(line: str) -> bool:
    return line.startswith("data: {") and '"delta":{"content":"' in line and '"content":""' not in line


# Latency


def test_streams_are_paced_to_the_profile_and_whole_answers_wait_it_all(
    fresh_server: Callable[..., Server], tmp_path: Path
) -> None:
    profiles = {"latency_profiles": {"models": {"gpt-4o": {"ttft": 200, "tokens_per_second": 50}}}}
    server = fresh_server("--config", config_file(tmp_path, profiles), workers=1)
    with server.http() as http:
        arrivals = stream_timings(http, "/v1/chat/completions", {**EXACT, "stream": True}, chat_token)
        assert len(arrivals) == 21
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert 0.2 <= arrivals[0] <= 0.22 + 0.03  # TTFT 200 ms (+ the request's own few ms)
        assert sum(gaps) / len(gaps) == pytest.approx(0.020, rel=0.10)
        start = time.perf_counter()
        assert http.post("/v1/chat/completions", json=EXACT).status_code == 200
        assert time.perf_counter() - start == pytest.approx(0.2 + 20 * 0.02, rel=0.10)
        # Other models are not slowed.
        start = time.perf_counter()
        http.post("/v1/chat/completions", json={**EXACT, "model": "gpt-4o-mini"})
        assert time.perf_counter() - start < 0.15


def test_anthropic_ttft_is_the_first_text_delta(fresh_server: Callable[..., Server], tmp_path: Path) -> None:
    profiles = {"latency_profiles": {"default": {"ttft": 150, "itl": 10}}}
    server = fresh_server("--config", config_file(tmp_path, profiles), workers=1)
    body = {"model": "claude-haiku-4-5", "max_tokens": 30, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    with server.http() as http:
        arrivals = stream_timings(http, "/v1/messages", body, lambda line: line == "event: content_block_delta")
    assert 0.15 <= arrivals[0] <= 0.2
    assert (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) == pytest.approx(0.010, rel=0.15)


def test_the_mock_servers_latency_and_jitter(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--latency", "100", "--jitter", "20", workers=1)
    with server.http() as http:
        for _ in range(5):
            start = time.perf_counter()
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
            assert 0.08 <= time.perf_counter() - start <= 0.16


# Faults


def test_the_failure_rate_holds_across_workers(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--failure-percent", "20", "--failure-jitter", "5")
    statuses: dict[int, int] = {}
    bodies = []
    for _ in range(200):
        with server.http() as http:  # a new connection each time: requests spread over both workers
            response = http.post("/v1/chat/completions", json=CHAT)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 500:
            bodies.append(response.json())
    # 15..25% of 200, give or take one request per worker.
    assert set(statuses) == {200, 500} and 30 - 2 <= statuses[500] <= 50 + 2
    assert bodies[0]["error"] == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": "internal_server_error",
    }
    stats = wait_for(lambda: (s := server.stats())["total_requests"] >= 200 and s, timeout_s=5, what="200 counted")
    assert stats["faults_injected"] == statuses[500]


@pytest.fixture
def faulty(fresh_server: Callable[..., Server], tmp_path: Path) -> Iterator[Callable[[str], Server]]:
    def start(kind: str) -> Server:
        faults = {"faults": {"failure_percent": 100, "mix": {kind: 1}, "retry_after_s": 0.2, "trickle_ms": 40}}
        return fresh_server("--config", config_file(tmp_path, faults), workers=1)

    yield start


def test_a_429_fault_is_retried_by_the_sdk_after_retry_after_ms(faulty: Callable[[str], Server]) -> None:
    server = faulty("http_429")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=2)
    start = time.perf_counter()
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert time.perf_counter() - start >= 2 * 0.2  # two waits of retry-after-ms
    assert limited.value.response.headers["retry-after-ms"] == "200"
    assert limited.value.code == "rate_limit_exceeded"
    assert wait_for(lambda: server.stats()["total_requests"] == 3, timeout_s=5, what="3 attempts counted")


@pytest.mark.parametrize("kind", ["stream_cut", "stream_error"])
def test_a_stream_that_breaks_off_raises_in_both_sdks(faulty: Callable[[str], Server], kind: str) -> None:
    server = faulty(kind)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    received = []
    with pytest.raises((openai.APIError, httpx.RemoteProtocolError)):
        for chunk in client.chat.completions.create(**SDK_EXACT, stream=True):  # type: ignore[call-overload]
            received.append(chunk)
    assert 0 < len(received) < 21
    claude = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    # The anthropic SDK here runs on httpx2: a cut connection surfaces as its error.
    with pytest.raises((anthropic.APIError, httpx.RemoteProtocolError, httpx2.RemoteProtocolError)):
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=30, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            stream.get_final_message()


def test_a_hang_lasts_until_the_clients_timeout(faulty: Callable[[str], Server]) -> None:
    server = faulty("hang")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]


def test_a_trickle_sends_a_whole_answer_in_slow_pieces(faulty: Callable[[str], Server]) -> None:
    server = faulty("trickle")
    with server.http() as http:
        start = time.perf_counter()
        response = http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert time.perf_counter() - start >= 9 * 0.04


# The timer


def test_the_timer_flips_every_worker_together_and_ends(fresh_server: Callable[..., Server]) -> None:
    # The window opens 3 s after the cluster starts: room for a slow start before the first 200s.
    server = fresh_server("--tpm", "3", "--tpm-duration", "1")
    # One keep-alive connection to each worker, asked in turn: each worker's flip is seen to a few ms.
    connections: dict[str, httpx.Client] = {}
    for _ in range(40):
        client = server.http()
        worker = client.post("/v1/chat/completions", json=CHAT).headers["x-understudy-worker"]
        if worker in connections:
            client.close()
        else:
            connections[worker] = client
        if len(connections) == 2:
            break
    assert len(connections) == 2, "both workers answered"
    seen: list[tuple[float, str, int]] = []

    def closed_again(worker: str) -> bool:
        """This worker answered 200, then 429, then 200 again."""
        statuses = [status for _, w, status in seen if w == worker]
        return 429 in statuses and statuses[-1] == 200 and statuses[0] == 200

    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline and not all(closed_again(worker) for worker in connections):
            for worker, client in connections.items():
                seen.append((time.monotonic(), worker, client.post("/v1/chat/completions", json=CHAT).status_code))
    finally:
        for client in connections.values():
            client.close()
    assert all(closed_again(worker) for worker in connections), "each worker opened and closed the window"
    windows = []
    for worker in connections:
        mine = [(at, status) for at, w, status in seen if w == worker]
        first_limited = min(at for at, status in mine if status == 429)
        last_ok = max(at for at, status in mine if status == 200 and at < first_limited)
        windows.append((last_ok, first_limited))
    # Each worker flipped inside its (last 200, first 429) window; those windows lie within 100 ms.
    assert max(first for _, first in windows) - min(last for last, _ in windows) < 0.1
    wait_for(lambda: "TPM (429) scenario triggered after 3 seconds" in server.process.log(), timeout_s=2, what="log")
    assert server.process.log().count("TPM (429) scenario triggered") == 1


# Cost


def test_each_answer_carries_its_cost_and_stats_sum_it_per_model(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server(workers=1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**SDK_EXACT)  # type: ignore[call-overload]
    usage = raw.parse().usage
    expected = default_pricing().cost_usd("gpt-4o", usage.prompt_tokens, usage.completion_tokens)
    assert expected is not None and raw.headers["x-understudy-cost-usd"] == format_cost(expected)
    stats = wait_for(lambda: (s := server.stats())["total_requests"] >= 1 and s, timeout_s=5, what="counted")
    assert stats["cost_usd"]["gpt-4o"] == pytest.approx(expected)
