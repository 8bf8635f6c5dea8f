"""Latency profiles: distributions, timing plans, model lookup, validation, the shipped config."""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sim.latency import (
    ITL_TABLE_SIZE,
    Distribution,
    LatencyConfig,
    LatencyConfigError,
    LatencyProfile,
    bifrost_latency,
    load_latency,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "latency.yaml"
SHIPPED_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "o3",
    "o4-mini",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
DRAWS = 20_000


def draws(spec: Any, count: int = DRAWS, seed: int = 7) -> list[float]:
    dist = load_latency({"default": {"ttft": spec}}).default
    assert dist is not None
    rand = random.Random(seed)
    return [dist.ttft.draw(rand) for _ in range(count)]


def quantile(values: list[float], p: float) -> float:
    return sorted(values)[int(p * len(values))]


def profile(**fields: Any) -> LatencyProfile:
    config = load_latency({"default": {"ttft": 0, **fields}})
    assert config.default is not None
    return config.default


def problems(document: Any) -> tuple[str, ...]:
    with pytest.raises(LatencyConfigError) as caught:
        load_latency(document)
    return caught.value.errors


# Distributions


def test_a_bare_number_and_a_fixed_spec_always_draw_their_value() -> None:
    assert set(draws(250, count=50)) == {250.0}
    assert set(draws({"type": "fixed", "ms": 12.5}, count=50)) == {12.5}


def test_uniform_stays_in_its_band_and_centres_on_the_midpoint() -> None:
    values = draws({"type": "uniform", "min_ms": 100, "max_ms": 300})
    assert 100 <= min(values) < 102 and 298 < max(values) <= 300
    assert statistics.fmean(values) == pytest.approx(200, rel=0.02)


def test_normal_has_its_mean_and_spread() -> None:
    values = draws({"type": "normal", "mean_ms": 200, "stddev_ms": 30})
    assert statistics.fmean(values) == pytest.approx(200, rel=0.02)
    assert statistics.stdev(values) == pytest.approx(30, rel=0.05)


def test_normal_is_clamped_at_zero_and_its_mean_accounts_for_it() -> None:
    spec = {"type": "normal", "mean_ms": 10, "stddev_ms": 30}
    values = draws(spec)
    assert min(values) == 0.0
    assert 0.3 < values.count(0.0) / len(values) < 0.4  # P(N(10, 30) < 0) is about 0.37
    assert statistics.fmean(values) == pytest.approx(Distribution.normal(10, 30).mean_ms, rel=0.05)


def test_lognormal_has_its_median_and_mean() -> None:
    values = draws({"type": "lognormal", "median_ms": 400, "sigma": 0.5})
    assert statistics.median(values) == pytest.approx(400, rel=0.03)
    assert statistics.fmean(values) == pytest.approx(Distribution.lognormal(400, 0.5).mean_ms, rel=0.03)
    assert min(values) > 0


def test_percentiles_reproduce_the_given_percentiles() -> None:
    values = draws({"type": "percentiles", "p50_ms": 400, "p90_ms": 800, "p99_ms": 1500}, count=50_000)
    assert quantile(values, 0.50) == pytest.approx(400, rel=0.05)
    assert quantile(values, 0.90) == pytest.approx(800, rel=0.05)
    assert quantile(values, 0.99) == pytest.approx(1500, rel=0.06)


def test_percentiles_fit_a_lognormal_through_p50_with_the_averaged_sigma() -> None:
    both = Distribution.from_percentiles(400, 800, 1500)
    assert both.kind == "lognormal" and both.median_ms == 400
    assert both.quantile_ms(0.9) == pytest.approx(800, rel=0.03)
    assert both.quantile_ms(0.99) == pytest.approx(1500, rel=0.04)
    only_p99 = Distribution.from_percentiles(400, p99_ms=1500)
    assert only_p99.quantile_ms(0.99) == pytest.approx(1500, rel=1e-3)
    only_p90 = Distribution.from_percentiles(400, p90_ms=800)
    assert only_p90.quantile_ms(0.9) == pytest.approx(800, rel=1e-3)


def test_medians_and_means_of_each_kind() -> None:
    assert Distribution.fixed(5).mean_ms == 5
    assert Distribution.uniform(100, 300).median_ms == 200
    assert Distribution.normal(-5, 1).median_ms == 0
    assert Distribution.lognormal(400, 0).mean_ms == 400


def test_a_seeded_random_reproduces_draws() -> None:
    spec = {"type": "lognormal", "median_ms": 700, "sigma": 0.4}
    assert draws(spec, count=100, seed=3) == draws(spec, count=100, seed=3)
    assert draws(spec, count=100, seed=3) != draws(spec, count=100, seed=4)


# Profiles and plans


def test_plan_has_one_gap_fewer_than_tokens_and_totals_them() -> None:
    itl = {"type": "normal", "mean_ms": 14, "stddev_ms": 3}
    timing = profile(ttft=500, itl=itl).plan(prompt_tokens=0, output_tokens=1000, rand=random.Random(1))
    assert timing.first_s == 0.5
    assert len(timing.gaps_s) == 999
    assert statistics.fmean(timing.gaps_s) == pytest.approx(0.014, rel=0.02)
    assert statistics.stdev(timing.gaps_s) == pytest.approx(0.003, rel=0.1)
    assert timing.total_s == pytest.approx(0.5 + sum(timing.gaps_s))


@pytest.mark.parametrize("tokens", [0, 1, -3])
def test_an_answer_of_at_most_one_token_has_no_gaps(tokens: int) -> None:
    timing = profile(ttft=200, tokens_per_second=50).plan(prompt_tokens=10, output_tokens=tokens, rand=random.Random())
    assert timing.gaps_s == ()
    assert timing.total_s == 0.2


def test_tokens_per_second_is_a_fixed_gap() -> None:
    timing = profile(ttft=100, tokens_per_second=80).plan(prompt_tokens=0, output_tokens=81, rand=random.Random())
    assert set(timing.gaps_s) == {1 / 80}
    assert timing.total_s == pytest.approx(1.1)


def test_without_itl_tokens_arrive_together() -> None:
    timing = profile(ttft=100).plan(prompt_tokens=0, output_tokens=5, rand=random.Random())
    assert timing.gaps_s == (0.0, 0.0, 0.0, 0.0)


def test_prefill_adds_per_prompt_token_to_the_first_token() -> None:
    slow = profile(ttft=200, prefill_ms_per_token=0.05)
    assert slow.plan(prompt_tokens=10_000, output_tokens=1, rand=random.Random()).first_s == pytest.approx(0.7)
    assert slow.plan(prompt_tokens=-5, output_tokens=1, rand=random.Random()).first_s == pytest.approx(0.2)


def test_gap_tables_cover_the_body_of_the_itl_distribution() -> None:
    itl = Distribution.lognormal(15, 0.5)
    timing = LatencyProfile(Distribution.fixed(0), itl).plan(
        prompt_tokens=0, output_tokens=50_001, rand=random.Random(2)
    )
    gaps_ms = [gap * 1000 for gap in timing.gaps_s]
    assert statistics.median(gaps_ms) == pytest.approx(15, rel=0.03)
    assert quantile(gaps_ms, 0.99) == pytest.approx(itl.quantile_ms(0.99), rel=0.05)
    assert len(set(gaps_ms)) > ITL_TABLE_SIZE // 2


def test_a_seeded_random_reproduces_a_plan() -> None:
    ttft = {"type": "lognormal", "median_ms": 700, "sigma": 0.4}
    spec = profile(ttft=ttft, itl={"type": "uniform", "min_ms": 5, "max_ms": 20})
    first = spec.plan(prompt_tokens=100, output_tokens=200, rand=random.Random(9))
    assert first == spec.plan(prompt_tokens=100, output_tokens=200, rand=random.Random(9))
    assert first != spec.plan(prompt_tokens=100, output_tokens=200, rand=random.Random(10))


@given(
    prompt=st.integers(min_value=0, max_value=200_000),
    output=st.integers(min_value=0, max_value=2_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_plans_are_never_negative_and_add_up(prompt: int, output: int, seed: int) -> None:
    spec = LatencyProfile(Distribution.normal(50, 80), Distribution.normal(2, 5), 0.01)
    timing = spec.plan(prompt_tokens=prompt, output_tokens=output, rand=random.Random(seed))
    assert timing.first_s >= prompt * 0.01 / 1000
    assert len(timing.gaps_s) == max(0, output - 1)
    assert all(gap >= 0 for gap in timing.gaps_s)
    assert timing.total_s == pytest.approx(timing.first_s + sum(timing.gaps_s))


# Lookup


def test_profile_for_prefers_exact_names_then_globs_in_file_order_then_default() -> None:
    config = load_latency(
        {
            "default": {"ttft": 1},
            "models": {"gpt-4.1*": {"ttft": 2}, "gpt-4.1-mini*": {"ttft": 3}, "gpt-4.1-mini": {"ttft": 4}},
        }
    )

    def ttft(model: str) -> float:
        found = config.profile_for(model)
        assert found is not None
        return found.ttft.median_ms

    assert ttft("gpt-4.1-mini") == 4  # exact beats an earlier glob
    assert ttft("gpt-4.1-mini-fast") == 2  # the first glob in file order wins
    assert ttft("gpt-4.1") == 2
    assert ttft("claude-haiku-4-5") == 1
    assert ttft("GPT-4.1") == 1  # globs are case-sensitive, like model names


def test_dated_snapshots_fall_back_to_their_family() -> None:
    config = load_latency({"models": {"gpt-4o": {"ttft": 450}, "claude-sonnet-4-5": {"ttft": 900}}})
    assert config.profile_for("gpt-4o-2024-08-06") == config.profile_for("gpt-4o")
    assert config.profile_for("claude-sonnet-4-5-20250929") == config.profile_for("claude-sonnet-4-5")
    assert config.profile_for("gpt-4o-mini") is None


def test_an_empty_section_has_no_profiles() -> None:
    raw: object
    for raw in (None, {}):
        config = load_latency(raw)
        assert config == LatencyConfig()
        assert config.profile_for("gpt-4o") is None


def test_repeated_lookups_give_the_same_answer() -> None:
    config = load_latency({"models": {"claude-*": {"ttft": 700}}})
    first = config.profile_for("claude-opus-4-6")
    assert first is not None and config.profile_for("claude-opus-4-6") is first


# Validation


def test_every_problem_is_listed_with_its_path() -> None:
    errors = problems(
        {
            "default": {"ttft": {"type": "gaussian", "ms": 1}},
            "models": {
                "gpt-4o": {
                    "ttft": {"type": "percentiles", "p50_ms": 450, "p90_ms": 400, "p99_ms": 300},
                    "tokens_per_second": 0,
                    "prefill_ms_per_token": -1,
                },
                "claude-*": {
                    "ttft": {"type": "lognormal", "median_ms": "700", "sigma": -0.4, "mode_ms": 1},
                    "itl": {"type": "uniform", "min_ms": 20, "max_ms": 10},
                    "tokens_per_second": 60,
                    "speed": "fast",
                },
                "o3": {"itl": {"type": "normal", "mean_ms": 14}},
                "o4-mini": "fast",
            },
            "extra": True,
        }
    )
    assert set(errors) == {
        "latency.extra: unknown field; allowed: default, models",
        "latency.default.ttft.type: must be one of fixed, uniform, normal, lognormal, percentiles, got 'gaussian'",
        "latency.models.gpt-4o.ttft.p90_ms: must be greater than p50_ms",
        "latency.models.gpt-4o.ttft.p99_ms: must be greater than p90_ms",
        "latency.models.gpt-4o.tokens_per_second: must be > 0, got 0",
        "latency.models.gpt-4o.prefill_ms_per_token: must be >= 0, got -1",
        "latency.models.claude-*.ttft.mode_ms: unknown field; allowed: type, median_ms, sigma",
        "latency.models.claude-*.ttft.median_ms: must be a finite number, got '700'",
        "latency.models.claude-*.ttft.sigma: must be >= 0, got -0.4",
        "latency.models.claude-*.itl.max_ms: must be >= min_ms (20)",
        "latency.models.claude-*: give itl or tokens_per_second, not both",
        "latency.models.claude-*.speed: unknown field; allowed: ttft, itl, tokens_per_second, prefill_ms_per_token",
        "latency.models.o3.ttft: is required",
        "latency.models.o3.itl.stddev_ms: is required for a normal distribution",
        "latency.models.o4-mini: must be a mapping, got str",
    }
    assert len(errors) == 15


TYPES = "must be one of fixed, uniform, normal, lognormal, percentiles"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (-5, ": must be >= 0, got -5"),
        (True, ": must be a number of ms or a mapping with a type, got bool"),
        (float("nan"), ": must be a finite number, got nan"),
        ({"ms": 5}, f".type: {TYPES}, got nothing"),
        ({"type": ["fixed"]}, f".type: {TYPES}, got ['fixed']"),
        ({"type": "lognormal", "median_ms": 0, "sigma": 1}, ".median_ms: must be > 0"),
        ({"type": "percentiles", "p50_ms": 400}, ": a percentiles distribution needs p90_ms or p99_ms (or both)"),
        ({"type": "percentiles", "p50_ms": 400, "p99_ms": 300}, ".p99_ms: must be greater than p50_ms"),
        ({"type": "percentiles", "p90_ms": 400}, ".p50_ms: is required for a percentiles distribution"),
        ({"type": "fixed", "ms": 1, "max_ms": 2}, ".max_ms: unknown field; allowed: type, ms"),
    ],
)
def test_a_bad_distribution_is_named(spec: Any, error: str) -> None:
    assert problems({"default": {"ttft": spec}}) == (f"latency.default.ttft{error}",)


def test_bad_sections_are_refused() -> None:
    assert problems(["gpt-4o"]) == ("latency: must be a mapping, got list",)
    assert problems({"models": ["gpt-4o"]}) == (
        "latency.models: must be a mapping of model name or glob to profile, got list",
    )
    assert problems({"models": {"": {"ttft": 1}}}) == ("latency.models: model names must be non-empty strings, got ''",)


def test_the_path_prefix_can_be_chosen() -> None:
    assert load_latency(None, where="x") == LatencyConfig()
    with pytest.raises(LatencyConfigError) as caught:
        load_latency({"default": None}, where="scenario.latency")
    assert caught.value.errors == ("scenario.latency.default: must be a mapping, got null",)
    assert "scenario.latency.default" in str(caught.value)


# Bifrost flags


def test_bifrost_latency_draws_the_whole_answer_within_latency_plus_or_minus_jitter() -> None:
    spec = bifrost_latency(200, 50)
    assert spec is not None and spec.itl is None
    rand = random.Random(5)
    timings = [spec.plan(prompt_tokens=100, output_tokens=20, rand=rand) for _ in range(5000)]
    firsts = [timing.first_s for timing in timings]
    assert 0.15 <= min(firsts) < 0.152 and 0.248 < max(firsts) <= 0.25
    assert all(timing.total_s == timing.first_s for timing in timings)


def test_bifrost_latency_clamps_at_zero_and_is_none_when_off() -> None:
    wide = bifrost_latency(10, 50)
    assert wide is not None
    rand = random.Random(6)
    firsts = [wide.ttft.draw(rand) for _ in range(2000)]
    assert min(firsts) == 0.0 and max(firsts) <= 60
    fixed = bifrost_latency(75, 0)
    assert fixed is not None and fixed.ttft == Distribution.fixed(75)
    assert bifrost_latency(0, 0) is None
    with pytest.raises(ValueError):
        bifrost_latency(-1, 0)


# The shipped config


def test_the_shipped_config_loads_and_names_every_current_model() -> None:
    config = load_latency(yaml.safe_load(CONFIG.read_text())["latency_profiles"])
    names = dict(config.models)
    assert set(SHIPPED_MODELS) <= set(names)
    rand = random.Random(0)
    for model in SHIPPED_MODELS:
        found = config.profile_for(model)
        assert found is names[model] and found is not config.default
        timing = found.plan(prompt_tokens=1000, output_tokens=200, rand=rand)
        assert 0 < timing.first_s < 120 and timing.total_s >= timing.first_s
    embeddings = names["text-embedding-3-small"]
    assert embeddings.itl is None and embeddings.prefill_ms_per_token == 0
    reasoning, chat = names["o3"], names["gpt-4o"]
    assert reasoning.ttft.median_ms > chat.ttft.median_ms
