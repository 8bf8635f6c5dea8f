"""Rate limits, API keys, /metrics and the request logs, as users see them: real processes, SDKs, HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import openai
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Server, wait_for

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}
MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 20, "messages": [{"role": "user", "content": "Hello"}]}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def test_the_cluster_admits_exactly_the_rpm_across_workers(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--limit-rpm", "30")
    started = time.monotonic()
    admitted: dict[str, int] = {}
    refused = []
    for _ in range(60):
        with server.http() as http:  # a new connection each time: requests spread over both workers
            response = http.post("/v1/chat/completions", json=CHAT)
        if response.status_code == 200:
            worker = response.headers["x-understudy-worker"]
            admitted[worker] = admitted.get(worker, 0) + 1
        else:
            refused.append(response)
    elapsed = time.monotonic() - started
    # A full bucket of 30, plus what refills (one every 2 s) while the test ran: never more, and no less.
    assert 30 <= sum(admitted.values()) <= 30 + elapsed / 2 + 1
    assert len(admitted) == 2, "both workers admitted from the one cluster-wide bucket"
    limited = refused[0]
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].startswith("Rate limit reached for gpt-4o in organization org-understudy on requests")
    assert 0 < int(limited.headers["retry-after-ms"]) <= 2000 and limited.headers["retry-after"] in ("1", "2")
    assert limited.headers["x-ratelimit-limit-requests"] == "30"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    stats = wait_for(lambda: (s := server.stats())["total_requests"] >= 60 and s, timeout_s=5, what="counted")
    assert stats["rate_limited"] == len(refused)


def test_every_answer_under_a_limit_carries_the_providers_headers(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--limit-rpm", "1000", "--limit-tpm", "6000", workers=1)
    with server.http() as http:
        first = http.post("/v1/chat/completions", json=CHAT)
        second = http.post("/v1/chat/completions", json=CHAT)
        claude = http.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC)
    for name in ("limit", "remaining", "reset"):
        for kind in ("requests", "tokens"):
            assert f"x-ratelimit-{name}-{kind}" in first.headers
            assert f"anthropic-ratelimit-{kind}-{name}" in claude.headers
    assert first.headers["x-ratelimit-limit-tokens"] == "6000"
    assert int(second.headers["x-ratelimit-remaining-requests"]) < int(first.headers["x-ratelimit-remaining-requests"])
    used = first.json()["usage"]["total_tokens"]
    # What the answer used is gone from the bucket, less the refill (100 a second) since.
    assert 6000 - used <= int(first.headers["x-ratelimit-remaining-tokens"]) <= 6000 - used + 100
    assert claude.headers["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_the_sdks_wait_out_a_rate_limit_and_succeed(fresh_server: Callable[..., Server]) -> None:
    # A token every 2 s: more than the SDKs' own backoff for two retries (0.5 s, then 1 s, less jitter),
    # so only a client that waits the 429's retry-after-ms gets through.
    server = fresh_server("--limit-rpm", "30", workers=1)
    with server.http() as http:
        while http.post("/v1/chat/completions", json=CHAT).status_code == 200:
            pass
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=2)
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    waited = time.monotonic() - started
    assert raw.http_response.status_code == 200
    assert raw.retries_taken >= 1
    assert waited < 2.5
    claude = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=2)
    while True:  # use up what refilled meanwhile
        with server.http() as http:
            if http.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC).status_code == 429:
                break
    message = claude.messages.with_raw_response.create(**MESSAGES)  # type: ignore[call-overload]
    assert message.http_response.status_code == 200 and message.retries_taken >= 1
    # The access log says which attempt each request was (the SDK's x-stainless-retry-count).
    lines = wait_for(lambda: _access_lines(server, retry=True), timeout_s=5, what="retries logged")
    assert any(line["status"] == 200 and int(line.get("retry_count", 0)) >= 1 for line in lines)  # type: ignore[call-overload]


def _access_lines(server: Server, *, retry: bool = False) -> list[dict[str, object]] | None:
    lines = [json.loads(line) for line in server.process.log().splitlines() if line.startswith('{"ts"')]
    if retry and not any(line.get("retry_count") for line in lines):
        return None
    return lines


def test_a_full_concurrency_limit_answers_503_or_529(fresh_server: Callable[..., Server]) -> None:
    # Streams whose first token comes at once and the rest slowly: each holds its slot for about 2 s.
    slow = json.dumps({"default": {"ttft": 0, "itl": 100}})
    server = fresh_server("--limit-concurrency", "2", "--latency-profiles", slow)
    with server.http() as first, server.http() as second:
        streams = [
            client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) for client in (first, second)
        ]
        responses = [stream.__enter__() for stream in streams]
        try:
            assert [response.status_code for response in responses] == [200, 200]  # both in flight now
            with server.http() as http:
                busy_openai = http.post("/v1/chat/completions", json=CHAT)
                busy_anthropic = http.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC)
            for response in responses:
                assert response.read().endswith(b"data: [DONE]\n\n")
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
    assert busy_openai.status_code == 503 and busy_openai.json()["error"]["type"] == "server_error"
    assert busy_anthropic.status_code == 529
    assert busy_anthropic.json()["error"]["type"] == "overloaded_error"
    with server.http() as http:  # the slots came back when the streams ended
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_keys_bring_their_own_limits_and_faults(fresh_server: Callable[..., Server], tmp_path: Path) -> None:
    config = tmp_path / "keys.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"key": "sk-team-a", "limits": {"rpm": 2}},
                    {"key": "sk-flaky", "faults": {"failure_percent": 100, "mix": {"http_503": 1}}},
                    {"key": "sk-plain"},
                ]
            }
        )
    )
    server = fresh_server("--config", str(config))

    def status(key: str | None) -> int:
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        with server.http() as http:
            return http.post("/v1/chat/completions", json=CHAT, headers=headers).status_code

    assert [status("sk-team-a") for _ in range(3)] == [200, 200, 429]
    assert [status("sk-plain") for _ in range(3)] == [200, 200, 200]
    assert status("sk-flaky") == 503
    assert status("sk-unknown") == 401
    assert status(None) == 401
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong-key-1234", max_retries=0)
    try:
        client.models.list()
    except openai.AuthenticationError as error:
        assert error.code == "invalid_api_key"
    else:
        raise AssertionError("a key not listed was accepted")


def test_metrics_are_the_clusters_in_prometheus_form(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--latency-profiles", json.dumps({"default": {"ttft": 30, "itl": 5}}))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    for _ in range(4):
        with server.http() as http:  # new connections: both workers answer
            http.post("/v1/chat/completions", json=CHAT)
    for _chunk in client.chat.completions.create(**CHAT, stream=True):  # type: ignore[call-overload]
        pass
    with server.http() as http:
        http.post("/v1/nope", json={})

    def families() -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] | None:
        with server.http() as http:
            response = http.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        found: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                found.setdefault(family.name, {})[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        requests = found.get("understudy_requests", {})
        return found if sum(requests.values()) >= 6 else None

    found = wait_for(families, timeout_s=5, what="6 requests in /metrics")
    requests = found["understudy_requests"]
    ok = (("model", "gpt-4o"), ("provider", "openai"), ("route", "/chat/completions"), ("status", "200"))
    assert requests[("understudy_requests_total", ok)] == 5
    assert any(dict(labels)["route"] == "other" and dict(labels)["status"] == "404" for _, labels in requests)
    ttft = found["understudy_time_to_first_token_seconds"]
    count = next(value for (name, _), value in ttft.items() if name.endswith("_count"))
    total = next(value for (name, _), value in ttft.items() if name.endswith("_sum"))
    assert count == 1 and 0.025 <= total <= 0.2
    itl = found["understudy_inter_token_latency_seconds"]
    assert next(value for (name, _), value in itl.items() if name.endswith("_count")) >= 5
    assert found["understudy_tokens_out"]
    assert found["understudy_workers_alive"][("understudy_workers_alive", ())] == 2


def test_access_log_lines_and_the_raw_log(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--log-raw", workers=1)
    with server.http() as http:
        http.post("/v1/chat/completions", json=CHAT, headers={"x-stainless-retry-count": "0"})
    lines = wait_for(lambda: _access_lines(server) or None, timeout_s=5, what="an access-log line")
    line = lines[0]
    assert line["event"] == "access" and line["status"] == 200 and line["model"] == "gpt-4o"
    assert line["worker"] == "w0" and line["retry_count"] == 0 and str(line["request_id"]).startswith("req_")
    assert isinstance(line["prompt_tokens"], int) and isinstance(line["latency_ms"], float)
    log = wait_for(lambda: (text := server.process.log()).count("--- Raw Re") >= 2 and text, timeout_s=5, what="raw")
    assert "--- Raw Request ---\n" in log and "POST http://" in log and '"model":"gpt-4o"' in log
    assert "--- Raw Response ---\nHTTP/1.1 200 OK" in log


def test_the_presets_start_from_a_clone(fresh_server: Callable[..., Server]) -> None:
    root = Path(__file__).resolve().parents[2]
    fast = fresh_server("--config", str(root / "configs" / "fast.yaml"), workers=1)
    with fast.http() as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert _access_lines(fast) == []  # fast: no access log
    parity = fresh_server("--config", str(root / "configs" / "production-parity.yaml"), workers=1)
    with parity.http() as http:
        answer = http.post("/v1/chat/completions", json=CHAT)
    assert answer.headers["x-ratelimit-limit-requests"] == "500"  # tier-1 gpt-4o
    assert answer.headers["x-ratelimit-limit-tokens"] == "30000"
