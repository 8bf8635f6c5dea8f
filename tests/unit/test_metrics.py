import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from sim.metrics import (
    DURATION_BOUNDS_S,
    FAMILIES,
    ITL_BOUNDS_S,
    MAX_MEMOISED_COMBINATIONS,
    MetricSeries,
    parse_sample_key,
    render,
    sample_key,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

CHAT = {"provider": "openai", "route": "/chat/completions"}


def observe(recorder: MetricSeries, **overrides: Any) -> None:
    request: dict[str, Any] = {
        "provider": "openai",
        "route": "/chat/completions",
        "status": 200,
        "model": "gpt-4o",
        "tokens_in": 12,
        "tokens_out": 7,
        "latency_s": 0.3,
        "ttft_s": 0.04,
        "itl_s": [0.004, 0.012],
        "cost_usd": 0.0025,
        "rate_limited": False,
        "fault": False,
    }
    recorder.observe_request(**{**request, **overrides})


def samples(series: dict[str, float], **gauges: float) -> Samples:
    body, content_type = render(series, extra_gauges=gauges)
    assert content_type == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def at(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def buckets(found: Samples, name: str, **labels: str) -> dict[str, float]:
    return {
        dict(sample_labels)["le"]: value
        for (sample_name, sample_labels), value in found.items()
        if sample_name == name + "_bucket" and {k: v for k, v in sample_labels if k != "le"} == labels
    }


def test_a_recorded_request_renders_as_counters_and_histograms() -> None:
    recorder = MetricSeries()
    observe(recorder, rate_limited=True, status=429)
    found = samples(recorder.snapshot())

    labels = {**CHAT, "status": "429", "model": "gpt-4o"}
    assert at(found, "understudy_requests_total", **labels) == 1
    assert at(found, "understudy_tokens_in_total", model="gpt-4o") == 12
    assert at(found, "understudy_tokens_out_total", model="gpt-4o") == 7
    assert at(found, "understudy_rate_limited_total", provider="openai", model="gpt-4o") == 1
    assert at(found, "understudy_faults_injected_total", provider="openai", model="gpt-4o") is None
    assert at(found, "understudy_cost_usd_total", model="gpt-4o") == 0.0025
    assert at(found, "understudy_request_duration_seconds_count", **CHAT) == 1
    assert at(found, "understudy_request_duration_seconds_sum", **CHAT) == 0.3
    assert buckets(found, "understudy_request_duration_seconds", **CHAT)["0.25"] == 0
    assert buckets(found, "understudy_request_duration_seconds", **CHAT)["0.5"] == 1
    ttft = buckets(found, "understudy_time_to_first_token_seconds", provider="openai", model="gpt-4o")
    assert (ttft["0.025"], ttft["0.05"]) == (0, 1)
    itl = buckets(found, "understudy_inter_token_latency_seconds", provider="openai", model="gpt-4o")
    assert (itl["0.0025"], itl["0.005"], itl["0.01"], itl["0.02"], itl["+Inf"]) == (0, 1, 1, 2, 2)
    assert at(found, "understudy_inter_token_latency_seconds_sum", provider="openai", model="gpt-4o") == 0.016


def test_every_family_has_help_and_type_even_when_empty() -> None:
    body, _ = render({})
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    for family in FAMILIES:
        parsed = families[family.name.removesuffix("_total")]
        assert parsed.documentation == family.help
        assert parsed.type == family.kind
        assert parsed.samples == []


def test_what_a_request_lacks_is_not_counted() -> None:
    recorder = MetricSeries()
    observe(recorder, tokens_in=0, tokens_out=0, ttft_s=None, itl_s=[], cost_usd=None, fault=True)
    found = samples(recorder.snapshot())
    names = {name for name, _ in found}
    assert not names & {
        "understudy_tokens_in_total",
        "understudy_tokens_out_total",
        "understudy_cost_usd_total",
        "understudy_time_to_first_token_seconds_count",
        "understudy_inter_token_latency_seconds_count",
    }
    assert at(found, "understudy_faults_injected_total", provider="openai", model="gpt-4o") == 1
    assert at(found, "understudy_request_duration_seconds_count", **CHAT) == 1


def test_histogram_buckets_are_cumulative_and_inf_equals_count() -> None:
    recorder = MetricSeries()
    latencies_s = [0.001, 0.007, 0.2, 0.2, 3.0, 45.0, 61.0, 500.0]
    for latency_s in latencies_s:
        observe(recorder, latency_s=latency_s)
    found = samples(recorder.snapshot())
    shown = buckets(found, "understudy_request_duration_seconds", **CHAT)

    assert list(shown) == "0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 5.0 10.0 30.0 60.0 +Inf".split()
    assert list(shown.values()) == [1, 2, 2, 2, 2, 4, 4, 4, 4, 5, 5, 5, 6, 8]
    assert shown["+Inf"] == at(found, "understudy_request_duration_seconds_count", **CHAT) == len(latencies_s)
    assert at(found, "understudy_request_duration_seconds_sum", **CHAT) == sum(latencies_s)


def test_a_value_equal_to_a_bound_is_counted_in_that_bounds_bucket() -> None:
    for bounds_s, argument, name, labels in (
        (DURATION_BOUNDS_S, "latency_s", "understudy_request_duration_seconds", CHAT),
        (DURATION_BOUNDS_S, "ttft_s", "understudy_time_to_first_token_seconds", {"provider": "openai", "model": "m"}),
        (ITL_BOUNDS_S, "itl_s", "understudy_inter_token_latency_seconds", {"provider": "openai", "model": "m"}),
    ):
        for index, bound in enumerate(bounds_s[:-1]):
            recorder = MetricSeries()
            observe(recorder, model="m", **{argument: [bound] if argument == "itl_s" else bound})
            shown = buckets(samples(recorder.snapshot()), name, **labels)
            counts = list(shown.values())
            assert counts[index] == 1, (name, bound)
            assert counts[index - 1] == 0 if index else True, (name, bound)


def test_stored_buckets_are_per_bucket_not_cumulative() -> None:
    recorder = MetricSeries()
    observe(recorder, latency_s=0.01)
    observe(recorder, latency_s=0.2)
    bucket_keys = {key: value for key, value in recorder.snapshot().items() if "duration_seconds_bucket" in key}
    assert bucket_keys == {
        'understudy_request_duration_seconds_bucket{provider="openai",route="/chat/completions",le="0.01"}': 1,
        'understudy_request_duration_seconds_bucket{provider="openai",route="/chat/completions",le="0.25"}': 1,
    }


def test_snapshots_summed_key_by_key_render_as_one_recorder_would() -> None:
    one, first, second = MetricSeries(), MetricSeries(), MetricSeries()
    requests = [
        {"latency_s": 0.02, "itl_s": [0.001, 0.3]},
        {"latency_s": 7.0, "status": 500, "fault": True, "cost_usd": None},
        {"model": "claude-3-5-sonnet", "provider": "anthropic", "route": "/messages", "ttft_s": 0.6},
        {"rate_limited": True, "status": 429, "tokens_out": 0, "itl_s": []},
    ]
    for index, overrides in enumerate(requests):
        observe(one, **overrides)
        observe(first if index % 2 else second, **overrides)
    a, b = first.snapshot(), second.snapshot()
    summed = {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}
    assert render(summed) == render(one.snapshot())


observations = st.lists(
    st.tuples(
        st.sampled_from(["gpt-4o", "o1", 'we"ird\\mo\ndel']),
        st.floats(min_value=0, max_value=100),
        st.lists(st.floats(min_value=0, max_value=2), max_size=5),
        st.booleans(),
    ),
    max_size=12,
)


@given(observations)
def test_any_split_over_workers_sums_to_the_same_exposition(
    requests: list[tuple[str, float, list[float], bool]],
) -> None:
    one, first, second = MetricSeries(), MetricSeries(), MetricSeries()
    for model, latency_s, itl_s, to_first in requests:
        observe(one, model=model, latency_s=latency_s, itl_s=itl_s)
        observe(first if to_first else second, model=model, latency_s=latency_s, itl_s=itl_s)
    a, b = first.snapshot(), second.snapshot()
    summed = {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}
    expected, got = samples(one.snapshot()), samples(summed)
    assert expected.keys() == got.keys()
    assert all(math.isclose(expected[key], got[key], abs_tol=1e-9) for key in expected)


@given(st.floats(min_value=0, max_value=100))
def test_a_value_lands_in_the_smallest_bound_at_or_above_it(latency_s: float) -> None:
    recorder = MetricSeries()
    observe(recorder, latency_s=latency_s)
    (key,) = (key for key in recorder.snapshot() if "duration_seconds_bucket" in key)
    parsed = parse_sample_key(key)
    assert parsed is not None
    bound = float(parsed[1]["le"])
    assert bound == min(b for b in DURATION_BOUNDS_S if b >= latency_s)


def test_label_values_with_quotes_backslashes_and_newlines_round_trip() -> None:
    model = 'gpt "4o" \\ back\\slash\nline\\n'
    recorder = MetricSeries()
    observe(recorder, model=model, route='/chat/"completions"')
    found = samples(recorder.snapshot())
    assert at(found, "understudy_tokens_in_total", model=model) == 12
    labels = {"provider": "openai", "route": '/chat/"completions"', "status": "200", "model": model}
    assert at(found, "understudy_requests_total", **labels) == 1


@given(st.text(), st.text())
def test_sample_keys_read_back_as_written(first: str, second: str) -> None:
    key = sample_key("understudy_x_total", [("model", first), ("provider", second)])
    assert parse_sample_key(key) == ("understudy_x_total", {"model": first, "provider": second})


def test_malformed_keys_and_values_are_left_out() -> None:
    recorder = MetricSeries()
    observe(recorder)
    good = recorder.snapshot()
    bad: dict[Any, Any] = {
        "understudy_requests_total": 5,  # no labels
        'understudy_requests_total{provider="openai"}': 5,  # labels missing
        'understudy_tokens_in_total{model="m",extra="x"}': 5,  # a label too many
        'understudy_tokens_in_total{model="m",model="n"}': 5,  # a label twice
        'understudy_tokens_in_total{model="m"': 5,  # unterminated
        'understudy_tokens_in_total{model="m}': 5,  # unterminated value
        "understudy_tokens_in_total{model=m}": 5,  # unquoted
        'understudy_tokens_in_total{model="m",}': 5,  # trailing comma
        'understudy_tokens_in_total{model="a"b"}': 5,  # stray quote
        'understudy_tokens_in_total{model="a\nb"}': 5,  # raw newline
        'understudy_tokens_in_total{model="gpt-4o"}x': 5,  # trailing text
        'unknown_total{model="m"}': 5,
        '9bad{model="m"}': 5,
        'understudy_request_duration_seconds_bucket{provider="p",route="r",le="0.3"}': 5,  # not a bound
        'understudy_request_duration_seconds_bucket{provider="p",route="r",le="fast"}': 5,
        'understudy_request_duration_seconds_bucket{provider="p",route="r"}': 5,  # no le
        'understudy_request_duration_seconds_sum{provider="p",route="r",le="1.0"}': 5,
        'understudy_request_duration_seconds{provider="p",route="r"}': 5,  # bare histogram name
        'understudy_cost_usd_total{model="a"}': "1.0",
        'understudy_cost_usd_total{model="b"}': math.nan,
        'understudy_cost_usd_total{model="c"}': math.inf,
        'understudy_cost_usd_total{model="d"}': True,
        'understudy_cost_usd_total{model="e"}': None,
        'understudy_cost_usd_total{model="f"}': [1],
        7: 1,
        None: 1,
        "": 1,
        "{}": 1,
    }
    assert render({**bad, **good}) == render(good)


def test_extra_gauges_are_rendered_and_bad_ones_left_out() -> None:
    found = samples(
        {},
        understudy_workers_alive=3,
        understudy_uptime_seconds=12.5,
        understudy_requests_total=1,  # a recorded family's sample
        understudy_request_duration_seconds=1,  # a recorded family
        understudy_nan=math.nan,
    )
    gauges = {name: value for (name, labels), value in found.items() if not labels}
    assert gauges == {"understudy_workers_alive": 3, "understudy_uptime_seconds": 12.5}
    body, _ = render({}, extra_gauges={"not a name": 1, "understudy_workers_alive": 2})
    assert b"not a name" not in body
    assert b"# TYPE understudy_workers_alive gauge\nunderstudy_workers_alive 2.0\n" in body


def test_many_label_combinations_are_counted_past_the_memo_bound() -> None:
    recorder = MetricSeries()
    models = [f"model-{index}" for index in range(MAX_MEMOISED_COMBINATIONS + 10)]
    for model in [*models, *models]:
        observe(recorder, model=model)
    found = samples(recorder.snapshot())
    assert all(at(found, "understudy_tokens_in_total", model=model) == 24 for model in models)


def test_a_baseline_taken_off_leaves_only_what_came_after() -> None:
    before, after = MetricSeries(), MetricSeries()
    observe(before, latency_s=0.2)
    baseline = before.snapshot()
    observe(before, latency_s=2.0, model="o1")
    observe(after, latency_s=2.0, model="o1")
    now = before.snapshot()
    since = {key: value - baseline.get(key, 0) for key, value in now.items() if value - baseline.get(key, 0)}
    assert render(since) == render(after.snapshot())
