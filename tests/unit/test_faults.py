"""Failure budgets, fault settings, the timer plugin and the delivery plan: pure, no event loop."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.delivery import count_token_events, is_token_event, stream_offsets
from sim.faults import (
    FAULT,
    FAULT_INJECTED,
    FailureBudget,
    FaultsConfigError,
    FaultSpec,
    FaultsPlugin,
    TimerPlugin,
    fault_error,
    load_faults,
    stream_error_event,
)
from sim.pipeline import REFUSAL, Context, PluginRequest, run_pre


@given(
    percent=st.floats(min_value=0, max_value=100),
    jitter=st.floats(min_value=0, max_value=30),
    requests=st.integers(min_value=1, max_value=3000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_budget_fails_its_share_within_one_request(percent: float, jitter: float, requests: int, seed: int) -> None:
    budget = FailureBudget(FaultSpec(percent, jitter), random.Random(seed))
    failed = sum(budget.should_fail() for _ in range(requests))
    low, high = max(0.0, percent - jitter) / 100, min(100.0, percent + jitter) / 100
    assert low * requests - 1 <= failed <= high * requests + 1


def test_workers_start_at_different_phases() -> None:
    first = [FailureBudget(FaultSpec(10), random.Random(1)).should_fail() for _ in range(10)]
    patterns = set()
    for seed in range(20):
        budget = FailureBudget(FaultSpec(10), random.Random(seed))
        patterns.add(tuple(budget.should_fail() for _ in range(10)))
    assert len(patterns) > 3 and len(first) == 10


def test_load_faults_reports_every_problem_with_its_path() -> None:
    with pytest.raises(FaultsConfigError) as raised:
        load_faults(
            {
                "failure_percent": 120,
                "mix": {"http_418": 1, "stream_cut": 0},
                "models": {"gpt-4o": {"failure_percent": -1, "colour": "red"}},
                "hang_s": "long",
                "extra": 1,
            }
        )
    assert raised.value.errors == (
        "faults.extra: unknown field",
        "faults.mix.http_418: unknown fault kind (one of http_429, http_500, http_503, http_529, stream_cut,"
        " stream_error, hang, trickle)",
        "faults.mix.stream_cut: weight must be a number > 0",
        "faults.failure_percent: must be at most 100",
        "faults.models.gpt-4o.colour: unknown field",
        "faults.models.gpt-4o.failure_percent: must be a number >= 0",
        "faults.hang_s: must be a number >= 0",
    )


def test_flags_give_the_default_and_models_override_it_exactly_or_by_glob() -> None:
    config = load_faults(
        {"mix": {"http_503": 1}, "models": {"gpt-4o": {"failure_percent": 50}, "claude-*": {"failure_percent": 5}}},
        percent=10,
        jitter=2,
    )
    assert config.spec_for("gpt-4o-mini") == FaultSpec(10, 2, (("http_503", 1.0),))
    assert config.spec_for("gpt-4o") == FaultSpec(50, 0, (("http_503", 1.0),))
    assert config.spec_for("claude-haiku-4-5") == FaultSpec(5, 0, (("http_503", 1.0),))
    assert not load_faults(None).enabled


def request(provider: str = "openai", model: str = "gpt-4o") -> PluginRequest:
    return PluginRequest(provider, "/chat/completions", model, {}, {})


def context(provider: str = "openai") -> Context:
    return Context(request_id="r", worker_id="w", provider=provider)


def test_the_plugin_short_circuits_http_faults_and_marks_delivery_faults() -> None:
    always_429 = FaultsPlugin(load_faults({"failure_percent": 100, "mix": {"http_429": 1}}), random.Random(0))
    ctx = context()
    short = run_pre([always_429], ctx, request()).short
    assert short is not None and short.error is not None and short.error.status == 429
    assert dict(short.error.headers) == {b"retry-after": b"1", b"retry-after-ms": b"1000"}
    assert ctx[FAULT_INJECTED]
    cutting = FaultsPlugin(load_faults({"failure_percent": 100, "mix": {"stream_cut": 1}}), random.Random(0))
    ctx = context()
    assert run_pre([cutting], ctx, request()).short is None and ctx[FAULT] == "stream_cut"
    refused = context()
    refused[REFUSAL] = ValueError("refused already")
    assert run_pre([always_429], refused, request()).short is None


@pytest.mark.parametrize(
    ("kind", "provider", "status", "error_type"),
    [
        ("http_500", "openai", 500, "server_error"),
        ("http_500", "anthropic", 500, "api_error"),
        ("http_503", "openai", 503, "server_error"),
        ("http_529", "anthropic", 529, "overloaded_error"),
        ("http_429", "anthropic", 429, "rate_limit_error"),
    ],
)
def test_fault_errors_speak_each_providers_words(kind: str, provider: str, status: int, error_type: str) -> None:
    error = fault_error(kind, provider=provider)
    assert (error.status, error.type, error.allow_fallbacks) == (status, error_type, False)


def test_stream_error_events_are_what_each_sdk_reads() -> None:
    assert stream_error_event(provider="openai", endpoint="/chat/completions").startswith(b'data: {"error":{')
    assert stream_error_event(provider="openai", endpoint="/responses").startswith(b"event: error\ndata: ")
    assert b'"overloaded_error"' in stream_error_event(provider="anthropic", endpoint="/messages")


def test_the_timer_answers_429_inside_its_window_only() -> None:
    now = [0.0]
    timer = TimerPlugin(10, 5, lambda: now[0])
    for at, limited in ((9.99, False), (10.0, True), (14.9, True), (15.0, False)):
        now[0] = at
        short = run_pre([timer], context("anthropic"), request("anthropic")).short
        assert (short is not None) is limited
        if short is not None:
            assert short.error is not None and (short.error.status, short.error.type) == (429, "rate_limit_error")
    forever = TimerPlugin(1, None, lambda: 1e9)
    assert forever.active()


def test_token_events_are_found_in_every_stream_format() -> None:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":" there"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert [is_token_event(event) for event in events] == [False, True, True, False, False]
    assert is_token_event(b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n')
    assert not is_token_event(b'event: message_start\ndata: {"type":"message_start"}\n\n')
    assert is_token_event(b'event: response.output_text.delta\ndata: {"delta":"x"}\n\n')
    assert count_token_events(events) == 2
    # Role chunk with the first token at TTFT; finish and [DONE] right after the last token.
    assert stream_offsets(events, 0.2, (0.05,)) == (0.2, 0.2, 0.25, 0.25, 0.25)
