"""The rate-limit arithmetic (buckets, leases, stock), its config, and the limits and keys plugins."""

from __future__ import annotations

import pytest

from sim.keys import KeysConfigError, KeysPlugin, load_keys
from sim.limits_plugin import RATE_LIMITED, LeaseNeed, LimitsPlugin, token_reservation
from sim.pipeline import AFTER_DELIVERY, Context, PluginRequest, PluginResponse, ShortCircuit, Suspend
from sim.ratelimit import (
    Ask,
    Buckets,
    LeasePool,
    Limit,
    LimitsConfig,
    LimitsConfigError,
    TokenBucket,
    format_reset,
    load_limits,
    openai_limit_message,
)
from sim.rules_plugin import SIZE_BYTES


def ask(name: str = "requests:cluster", need: float = 1, capacity: int = 60, kind: str = "requests") -> Ask:
    return Ask(name, kind, capacity, need)


# Buckets


def test_a_bucket_refills_its_capacity_each_minute_and_never_overflows() -> None:
    bucket = TokenBucket.full(60, 1.0, now_s=0)
    assert bucket.take(60, 0) and not bucket.take(1, 0)
    assert bucket.wait_s(3, 0) == 3
    assert bucket.refill(2.5) == 2.5
    assert bucket.full_in_s(2.5) == 57.5
    assert bucket.refill(1000) == 60


def test_a_concurrency_bucket_refills_only_with_what_is_put_back() -> None:
    bucket = TokenBucket.full(2, 0.0, now_s=0)
    assert bucket.take(2, 0) and bucket.wait_s(1, 100) is None
    bucket.put(1, 100)
    assert bucket.take(1, 100)


def test_a_lease_grants_every_need_or_nothing() -> None:
    buckets = Buckets()
    roomy, tight = ask("requests:cluster", capacity=1000), ask("requests:model:gpt-4o", capacity=2)
    assert buckets.lease((roomy, tight), 0, workers=1).ok
    assert buckets.lease((roomy, tight), 0, workers=1).ok
    refused = buckets.lease((roomy, tight), 0, workers=1)
    assert not refused.ok and all(part.granted == 0 for part in refused.parts)
    # Nothing was taken from the roomy bucket for the refused lease; the tight one says when.
    levels = buckets.levels(0)
    assert levels["requests:model:gpt-4o"] == 0
    assert refused.parts[1].retry_after_s == pytest.approx(30.0)  # 2 per minute: one token in 30 s


def test_a_lease_adds_a_small_stock_and_none_at_low_limits() -> None:
    buckets = Buckets()
    assert buckets.lease((ask(capacity=120),), 0, workers=2).parts[0].granted == 1
    big = buckets.lease((ask("requests:big", capacity=100_000),), 0, workers=4).parts[0]
    assert big.granted == 1 + 250  # 1% of the capacity split between 4 workers
    slots = buckets.lease((ask("concurrency:cluster", kind="concurrency", capacity=100_000),), 0, workers=1)
    assert slots.parts[0].granted == 1  # slots go back as requests end: no stock


def test_a_bucket_whose_limit_changed_starts_again_full() -> None:
    buckets = Buckets()
    assert buckets.lease((ask(capacity=1),), 0, workers=1).ok
    assert not buckets.lease((ask(capacity=1),), 0, workers=1).ok
    assert buckets.lease((ask(capacity=5),), 0, workers=1).ok


# A worker's stock


def test_the_stock_admits_what_it_holds_and_leases_only_the_shortfall() -> None:
    pool = LeasePool()
    asks = (ask(need=1), ask("tokens:cluster", need=100, capacity=10_000, kind="tokens"))
    assert not pool.take(asks)
    pool.held = {"requests:cluster": 3, "tokens:cluster": 40}
    assert [a.need for a in pool.shortfall(asks)] == [0, 60]
    assert not pool.take(asks) and pool.held["requests:cluster"] == 3  # all or nothing
    pool.held["tokens:cluster"] = 100
    assert pool.take(asks) and pool.held == {"requests:cluster": 2, "tokens:cluster": 0}


def test_settling_gives_back_the_surplus_and_keeps_a_debt() -> None:
    pool = LeasePool(keep={"tokens:cluster": 10})
    assert pool.settle("tokens:cluster", reserved=500, used=90) == 400  # keeps its allowed 10
    assert pool.held["tokens:cluster"] == 10
    assert pool.settle("tokens:cluster", reserved=50, used=80) == 0
    assert pool.held["tokens:cluster"] == -20  # the next lease pays it first
    assert pool.shortfall((ask("tokens:cluster", need=5, kind="tokens"),))[0].need == 5


def test_the_stock_refuses_locally_while_the_bucket_cannot_have_refilled() -> None:
    buckets, pool = Buckets(), LeasePool()
    one = (ask(capacity=60),)
    for _ in range(60):
        answer = buckets.lease(one, 0, workers=1)
        pool.grant(one, answer, 0)
        assert pool.take(one)
    pool.grant(one, buckets.lease(one, 0, workers=1), 0)
    assert pool.refused_locally(one, 0.5) == pytest.approx(0.5)
    assert pool.refused_locally(one, 1.0) is None  # a token may be there now: ask


# What the client reads


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0201, "21ms"), (0.999, "999ms"), (1.5, "1.5s"), (13.694, "13.694s"), (360, "6m0s")]
)
def test_reset_durations_read_as_openai_writes_them(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


def test_openai_429_words() -> None:
    message = openai_limit_message(model="gpt-4o", kind="tokens", limit=30000, used=29500, requested=900, wait_s=0.8)
    assert message == (
        "Rate limit reached for gpt-4o in organization org-understudy on tokens per min (TPM): "
        "Limit 30000, Used 29500, Requested 900. Please try again in 800ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )


# Config


def test_limits_from_the_section_the_flags_and_a_tier() -> None:
    config = load_limits({"rpm": 100, "tier": "tier-1", "models": {"gpt-4o": {"rpm": 7}}}, rpm=50, tpm=1000)
    assert config.cluster == Limit(rpm=50, tpm=1000)
    labels = [(scope.label, scope.limit) for scope in config.scopes("gpt-4o", None)]
    assert labels == [("cluster", Limit(rpm=50, tpm=1000)), ("model:gpt-4o", Limit(rpm=7))]  # the section wins
    assert config.scopes("claude-sonnet-4-5-20250929", None)[1].limit == Limit(rpm=50, tpm=30_000)


def test_every_limits_problem_is_reported_with_its_path() -> None:
    with pytest.raises(LimitsConfigError) as raised:
        load_limits({"rpm": 0, "tier": "tier-9", "burst": 1, "models": {"gpt-4o": {"tpm": "many", "x": 1}}})
    assert set(raised.value.errors) == {
        "limits.rpm: must be a whole number >= 1",
        "limits.burst: unknown field",
        "limits.tier: must be one of tier-1, tier-2",
        "limits.models.gpt-4o.x: unknown field",
        "limits.models.gpt-4o.tpm: must be a whole number >= 1",
    }


def test_the_token_reservation_is_the_prompt_estimate_plus_the_maximum_output() -> None:
    assert token_reservation({"max_tokens": 100}, size_bytes=401) == 101 + 100
    assert token_reservation({"max_completion_tokens": 5, "max_tokens": 100}, size_bytes=4) == 6
    assert token_reservation({}, size_bytes=0) == 0


# The limits plugin


def request(provider: str = "openai", key: str | None = None, body: dict[str, object] | None = None) -> PluginRequest:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    endpoint = "/messages" if provider == "anthropic" else "/chat/completions"
    return PluginRequest(provider, endpoint, "gpt-4o", body or {}, headers)


def context(provider: str = "openai") -> Context:
    ctx = Context(request_id="r", worker_id="w", provider=provider)
    ctx[SIZE_BYTES] = 40
    return ctx


class Harness:
    """A limits plugin with a coordinator's buckets one (synchronous) step away."""

    def __init__(self, config: LimitsConfig, *, reachable: bool = True) -> None:
        self.buckets = Buckets()
        self.now = 0.0
        self.returned: list[tuple[str, float]] = []
        self.reachable = reachable
        self.plugin = LimitsPlugin(
            config, clock=lambda: self.now, wall_clock=lambda: 0.0, give_back=self.returned.extend
        )

    def run(self, ctx: Context, req: PluginRequest) -> PluginRequest | ShortCircuit:
        result = self.plugin.pre_hook(ctx, req)
        while isinstance(result, Suspend):
            assert isinstance(result.need, LeaseNeed)
            answer = self.buckets.lease(result.need.asks, self.now, workers=1) if self.reachable else None
            result = result.resume(answer)
        return result


def test_requests_over_the_rpm_get_openai_429_with_retry_after_and_headers() -> None:
    harness = Harness(LimitsConfig(Limit(rpm=2)))
    assert isinstance(harness.run(context(), request()), PluginRequest)
    assert isinstance(harness.run(context(), request()), PluginRequest)
    ctx = context()
    refused = harness.run(ctx, request())
    assert isinstance(refused, ShortCircuit) and refused.error is not None and RATE_LIMITED in ctx
    error = refused.error
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    headers = dict(error.headers)
    assert headers[b"retry-after"] == b"30" and headers[b"retry-after-ms"] == b"30000"
    assert headers[b"x-ratelimit-limit-requests"] == b"2" and headers[b"x-ratelimit-remaining-requests"] == b"0"
    assert "Limit 2, Used 2, Requested 1" in error.message


def test_an_admitted_answer_carries_the_headers_and_settles_its_tokens() -> None:
    harness = Harness(LimitsConfig(Limit(rpm=100, tpm=10_000)))
    ctx = context()
    assert isinstance(harness.run(ctx, request(body={"max_tokens": 500})), PluginRequest)
    response, _ = harness.plugin.post_hook(ctx, PluginResponse(200, b"{}", usage=(10, 20)), None)
    assert response is not None
    headers = dict(response.headers)
    assert headers[b"x-ratelimit-limit-tokens"] == b"10000"
    assert int(headers[b"x-ratelimit-remaining-tokens"]) == 10_000 - 30  # the reservation was settled to usage
    assert harness.returned == [("tokens:cluster", 480.0)]  # 10 + 500 reserved, 30 used: the rest goes back


def test_anthropic_gets_its_own_429_and_a_full_concurrency_limit_is_529() -> None:
    harness = Harness(LimitsConfig(Limit(rpm=1, concurrency=5)))
    assert isinstance(harness.run(context("anthropic"), request("anthropic")), PluginRequest)
    refused = harness.run(context("anthropic"), request("anthropic"))
    assert isinstance(refused, ShortCircuit) and refused.error is not None
    assert (refused.error.status, refused.error.type) == (429, "rate_limit_error")
    assert b"anthropic-ratelimit-requests-remaining" in dict(refused.error.headers)

    busy = Harness(LimitsConfig(Limit(concurrency=1)))
    first = context("anthropic")
    assert isinstance(busy.run(first, request("anthropic")), PluginRequest)
    busy.plugin.post_hook(first, PluginResponse(200), None)
    second = busy.run(context("anthropic"), request("anthropic"))
    assert isinstance(second, ShortCircuit) and second.error is not None and second.error.status == 529
    openai = busy.run(context(), request())
    assert isinstance(openai, ShortCircuit) and openai.error is not None and openai.error.status == 503
    for release in first[AFTER_DELIVERY]:  # the slot comes back once the answer has left
        release()
    busy.buckets.give_back(busy.returned, 0)
    assert isinstance(busy.run(context(), request()), PluginRequest)


def test_a_request_larger_than_the_tpm_is_refused_for_good() -> None:
    harness = Harness(LimitsConfig(Limit(tpm=100)))
    refused = harness.run(context(), request(body={"max_tokens": 1000}))
    assert isinstance(refused, ShortCircuit) and refused.error is not None
    assert refused.error.message.startswith("Request too large for gpt-4o")


def test_per_key_limits_count_each_key_apart() -> None:
    harness = Harness(LimitsConfig(keys={"a": Limit(rpm=1), "b": Limit(rpm=1)}))
    assert isinstance(harness.run(context(), request(key="a")), PluginRequest)
    assert isinstance(harness.run(context(), request(key="a")), ShortCircuit)
    assert isinstance(harness.run(context(), request(key="b")), PluginRequest)
    assert isinstance(harness.run(context(), request(key="c")), PluginRequest)  # no limit of its own


def test_without_the_coordinator_a_local_share_decides() -> None:
    harness = Harness(LimitsConfig(Limit(rpm=4)), reachable=False)
    harness.plugin.workers = 2  # as the coordinator last said: this worker's share is 2
    results = [harness.run(context(), request()) for _ in range(3)]
    assert [isinstance(result, PluginRequest) for result in results] == [True, True, False]


# API keys


def test_keys_accept_only_the_listed_ones_in_each_providers_words() -> None:
    plugin = KeysPlugin(load_keys([{"key": "sk-good-key-0001"}]))
    assert isinstance(plugin.pre_hook(context(), request(key="sk-good-key-0001")), PluginRequest)
    wrong = plugin.pre_hook(context(), request(key="sk-wrong-key-9999"))
    assert isinstance(wrong, ShortCircuit) and wrong.error is not None
    assert (wrong.error.status, wrong.error.code) == (401, "invalid_api_key")
    assert "sk-**********9999" in wrong.error.message
    anthropic = plugin.pre_hook(context("anthropic"), request("anthropic"))
    assert isinstance(anthropic, ShortCircuit) and anthropic.error is not None
    assert (anthropic.error.status, anthropic.error.type) == (401, "authentication_error")


def test_every_keys_problem_is_reported_with_its_path() -> None:
    with pytest.raises(KeysConfigError) as raised:
        load_keys(
            [
                {"key": "a", "limits": {"rpm": -1}},
                {"key": "a"},
                {"limits": {}},
                {"key": "b", "faults": {"failure_percent": 300}, "colour": "red"},
            ]
        )
    assert set(raised.value.errors) == {
        "keys[0].limits.rpm: must be a whole number >= 1",
        "keys[1].key: * is listed twice",
        "keys[2].key: required, a non-empty string",
        "keys[3].colour: unknown field",
        "keys[3].faults.failure_percent: must be at most 100",
    }
