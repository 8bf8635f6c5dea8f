"""The built-in stats and auth plugins, driven through the pipeline functions without a server."""

from __future__ import annotations

import random

import pytest

from sim.builtin_plugins import INVALID, MISSING, UPSTREAM, AuthPlugin, StatsPlugin
from sim.errors import ApiError
from sim.mocker import load_mocker
from sim.pipeline import REFUSAL, BasePlugin, Context, PluginError, PluginRequest, PluginResponse, run_post, run_pre
from sim.rules_plugin import DECISION, RulesPlugin
from sim.stats import RequestCounters


def request(headers: dict[str, str] | None = None, method: str = "POST") -> PluginRequest:
    return PluginRequest("openai", "/chat/completions", "gpt-4o", {"messages": []}, headers or {}, method)


def context() -> Context:
    return Context(request_id="req_1", worker_id="w0", provider="openai")


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({"authorization": "Bearer k"}, True),
        ({"x-api-key": "k"}, True),
        ({"authorization": "Bearer other", "x-api-key": "k"}, True),
        ({"authorization": "bearer k"}, False),  # exactly the value, as the mock server compares
        ({"authorization": "Bearer k "}, False),
        ({"x-api-key": "other"}, False),
        ({}, False),
    ],
)
def test_auth_accepts_exactly_the_value_or_its_x_api_key(headers: dict[str, str], accepted: bool) -> None:
    assert AuthPlugin("Bearer k").accepts(headers) is accepted


def test_auth_refuses_with_a_403_that_says_what_was_wrong() -> None:
    auth = AuthPlugin("Bearer k")
    missing = run_pre([auth], context(), request()).short
    wrong = run_pre([auth], context(), request({"authorization": "Bearer no"})).short
    assert missing is not None and missing.error is not None and wrong is not None and wrong.error is not None
    assert (missing.error.status, missing.error.message, missing.error.type) == (403, MISSING, "permission_error")
    assert (wrong.error.status, wrong.error.message) == (403, INVALID)
    assert not missing.error.allow_fallbacks


class Breaks(BasePlugin):
    name = "breaks"

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        raise RuntimeError("boom")


def test_stats_counts_the_final_answer_after_every_other_post_hook() -> None:
    counters = RequestCounters()
    plugins = [StatsPlugin(counters), Breaks()]
    ctx = context()
    pre = run_pre(plugins, ctx, request())
    run_post(pre.ran, ctx, PluginResponse(200, b"{}"), None)
    # Breaks turned the 200 into a 500 before stats saw it; its failure is counted too.
    assert counters.snapshot() == {
        "total_requests": 1,
        "mocked_requests": 1,
        "responses_generated": 0,
        "errors_generated": 1,
        "plugin_failures": 1,
        "faults_injected": 0,
        "rule_hits": {},
        "cost_usd": {},
        "rate_limited": 0,
        "served_without_coordinator": 0,
        "metrics": {},
    }


def test_stats_counts_rule_hits_and_upstream_answers_as_not_mocked() -> None:
    counters = RequestCounters()
    document = {"enabled": True, "rules": [{"name": "all", "responses": [{"type": "passthrough"}]}]}
    plugins = [StatsPlugin(counters), RulesPlugin(load_mocker(document), random.Random(0))]
    ctx = context()
    pre = run_pre(plugins, ctx, request())
    ctx[UPSTREAM] = True  # as the provider step marks it
    run_post(pre.ran, ctx, PluginResponse(200), None)
    assert ctx[DECISION].rule == "all"
    assert (counters.total_requests, counters.mocked_requests, counters.rule_hits) == (1, 0, {"all": 1})


def test_rules_leave_a_refused_request_alone() -> None:
    document = {"enabled": True, "rules": [{"name": "all", "responses": [{"type": "passthrough"}]}]}
    ctx = context()
    ctx[REFUSAL] = ApiError(404, "Invalid URL")
    pre = run_pre([RulesPlugin(load_mocker(document), random.Random(0))], ctx, request())
    assert pre.short is None and DECISION not in ctx
