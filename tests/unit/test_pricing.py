"""Model prices: cost arithmetic, model lookup, config validation, the shipped table, header formatting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sim.pricing import (
    DEFAULT_PRICES,
    Price,
    PricingConfigError,
    PricingTable,
    default_pricing,
    format_cost,
    load_pricing,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pricing.yaml"
GPT_4O = Price(2.50, 10.00, 1.25)
tokens = st.integers(min_value=0, max_value=10_000_000)


def test_cost_is_tokens_times_rate_per_million() -> None:
    assert GPT_4O.cost_usd(1000, 500) == pytest.approx(0.0075)
    assert default_pricing().cost_usd("gpt-4o", 1000, 500) == pytest.approx(0.0075)


def test_cached_prompt_tokens_cost_the_cached_rate() -> None:
    # 600 uncached at 2.50, 400 cached at 1.25, 500 out at 10.00 (per million).
    assert GPT_4O.cost_usd(1000, 500, cached_tokens=400) == pytest.approx((600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)


def test_cached_tokens_cost_full_input_price_without_a_cached_rate() -> None:
    price = Price(10.0, 30.0)
    assert price.cost_usd(1000, 0, cached_tokens=400) == price.cost_usd(1000, 0)


def test_cached_tokens_beyond_the_prompt_are_clamped() -> None:
    assert GPT_4O.cost_usd(100, 0, cached_tokens=500) == GPT_4O.cost_usd(100, 0, cached_tokens=100)
    assert GPT_4O.cost_usd(100, 0, cached_tokens=-5) == GPT_4O.cost_usd(100, 0)


@given(prompt=tokens, completion=tokens, cached_share=st.floats(min_value=0, max_value=1))
def test_cost_is_the_sum_of_its_parts_and_caching_never_costs_more(
    prompt: int, completion: int, cached_share: float
) -> None:
    cached = int(prompt * cached_share)
    whole = GPT_4O.cost_usd(prompt, completion, cached)
    parts = GPT_4O.cost_usd(prompt - cached, 0) + GPT_4O.cost_usd(cached, 0, cached) + GPT_4O.cost_usd(0, completion)
    assert whole == pytest.approx(parts)
    assert whole <= GPT_4O.cost_usd(prompt, completion) + 1e-12


def test_exact_id_wins_over_an_earlier_glob() -> None:
    cheap, dear = Price(1.0, 1.0), Price(9.0, 9.0)
    table = PricingTable((("gpt-4o*", dear), ("gpt-4o-mini", cheap)))
    assert table.price_for("gpt-4o-mini") is cheap
    assert table.price_for("gpt-4o-audio") is dear


def test_globs_are_tried_in_order_and_are_case_sensitive() -> None:
    first, second = Price(1.0, 1.0), Price(2.0, 2.0)
    table = PricingTable((("ft:gpt-4o*", first), ("ft:*", second)))
    assert table.price_for("ft:gpt-4o:acme::abc") is first
    assert table.price_for("ft:gpt-3.5-turbo:acme::abc") is second
    assert table.price_for("FT:gpt-4o") is None


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ],
)
def test_dated_snapshots_cost_what_their_family_costs(model: str, family: str) -> None:
    table = default_pricing()
    assert table.price_for(model) is not None
    assert table.price_for(model) == table.price_for(family)


def test_a_listed_snapshot_keeps_its_own_price() -> None:
    snapshot = Price(5.0, 15.0)
    table = PricingTable((("gpt-4o", GPT_4O), ("gpt-4o-2024-05-13", snapshot)))
    assert table.price_for("gpt-4o-2024-05-13") is snapshot
    assert table.price_for("gpt-4o-2024-08-06") is GPT_4O


def test_only_a_whole_date_suffix_is_stripped() -> None:
    table = PricingTable((("gpt-4o", GPT_4O),))
    assert table.price_for("gpt-4o-2024") is None
    assert table.price_for("gpt-4o-2024-08-06-extra") is None


def test_unknown_model_has_no_price_and_no_cost() -> None:
    table = default_pricing()
    assert table.price_for("my-local-llama") is None
    assert table.cost_usd("my-local-llama", 1000, 500) is None
    # The memoised answer is the same answer.
    assert table.price_for("my-local-llama") is None


def test_load_pricing_reads_a_section() -> None:
    table = load_pricing(
        {"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}, "local-*": {"input": 0, "output": 0}}
    )
    assert table.price_for("gpt-4o") == GPT_4O
    assert table.price_for("local-llama") == Price(0.0, 0.0, None)
    assert table.cost_usd("local-llama", 10**6, 10**6) == 0.0


def test_none_or_empty_section_is_an_empty_table() -> None:
    assert load_pricing(None).entries == ()
    assert load_pricing({}).price_for("gpt-4o") is None


def test_load_errors_are_reported_all_at_once_with_their_paths() -> None:
    raw = {
        "gpt-4o": {"input": -1, "output": "ten", "cached_input": True},
        "gpt-4.1": {"output": 8.0, "cahced_input": 0.5},
        "o3": {"input": float("inf"), "output": None},
        "o3-mini": [1.1, 4.4],
        "fine": {"input": 1, "output": 2},
    }
    with pytest.raises(PricingConfigError) as caught:
        load_pricing(raw, where="cfg.pricing")
    assert caught.value.errors == (
        "cfg.pricing.gpt-4o.input: must be a number >= 0, got -1",
        "cfg.pricing.gpt-4o.output: must be a number >= 0, got 'ten'",
        "cfg.pricing.gpt-4o.cached_input: must be a number >= 0, got True",
        "cfg.pricing.gpt-4.1.cahced_input: unknown field; allowed: input, output, cached_input",
        "cfg.pricing.gpt-4.1: missing required field input",
        "cfg.pricing.o3.input: must be a number >= 0, got inf",
        "cfg.pricing.o3.output: must be a number >= 0, got None",
        "cfg.pricing.o3-mini: must be a mapping with input, output, got list",
    )
    assert "cfg.pricing.gpt-4.1: missing required field input" in str(caught.value)


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(PricingConfigError) as caught:
        load_pricing(["gpt-4o"])
    assert caught.value.errors == ("pricing: must be a mapping of model to prices, got list",)


def test_shipped_yaml_equals_the_built_in_prices() -> None:
    document = yaml.safe_load(CONFIG.read_text())
    assert set(document) == {"pricing"}
    assert document["pricing"] == DEFAULT_PRICES
    assert load_pricing(document["pricing"]) == default_pricing()


def test_every_built_in_price_loads() -> None:
    table = default_pricing()
    assert [model for model, _ in table.entries] == list(DEFAULT_PRICES)
    assert table.price_for("text-embedding-3-small") == Price(0.02, 0.0, None)
    assert table.price_for("claude-opus-4-6") == Price(5.0, 25.0, 0.5)


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.000125, "0.000125"),
        (0.0075, "0.0075"),
        (0.0, "0.0"),
        (3.0, "3.0"),
        (12.5, "12.5"),
        (1e-9, "0.0"),
        (0.123456789, "0.12345679"),
        (1e-7, "0.0000001"),
    ],
)
def test_format_cost_is_a_plain_decimal(usd: float, text: str) -> None:
    assert format_cost(usd) == text
