"""Cluster-wide counters and histograms, and their Prometheus exposition.

Theory of operation: a worker records into :class:`MetricSeries`, whose only
state is one flat ``dict[str, float]``. Each key is a sample written the way
the Prometheus text format writes it, metric name and labels together, such as
``understudy_requests_total{provider="openai",route="/chat/completions",...}``,
with label values escaped so that every key reads back one way only. Because
the keys are flat strings, the coordinator merges workers' cumulative snapshots
by adding values key by key (``sim.stats.sum_counters``) and takes a reset
baseline off by subtracting them, with no knowledge of metrics at all.

A histogram is kept as one count per bucket, not as the cumulative counts that
Prometheus shows: an observation adds one to the bucket of the smallest bound
at or above it, and ``_sum`` and ``_count`` keys go with the buckets. Counts
per bucket stay right under addition and subtraction; the cumulative counts
are worked out only in :func:`render`, with every bound shown and ``+Inf``
equal to the count.

:func:`render` may be handed series that came over the network from other
processes: a key it cannot read, a metric or label it does not know, or a
value that is not a finite number is left out, and it never raises for them.
Recording is on the path of every request, so :class:`MetricSeries` builds the
key strings for a label combination once and keeps them in a bounded memo.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)
ITL_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, math.inf)

# Distinct (provider, route, status, model) combinations whose keys are kept
# built; past this the memo starts again rather than grow with client input.
MAX_MEMOISED_COMBINATIONS = 1024


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family that a worker records and :func:`render` shows."""

    name: str  # as exposed; a counter's ends in ``_total``
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    bounds_s: tuple[float, ...] = ()  # histograms only; ascending, ending in +Inf


REQUESTS = Family(
    "understudy_requests_total", "counter", "Requests answered.", ("provider", "route", "status", "model")
)
TOKENS_IN = Family("understudy_tokens_in_total", "counter", "Prompt tokens counted in requests.", ("model",))
TOKENS_OUT = Family("understudy_tokens_out_total", "counter", "Completion tokens sent in responses.", ("model",))
RATE_LIMITED = Family(
    "understudy_rate_limited_total", "counter", "Requests refused by a rate limit.", ("provider", "model")
)
FAULTS = Family(
    "understudy_faults_injected_total", "counter", "Requests given an injected fault.", ("provider", "model")
)
COST = Family("understudy_cost_usd_total", "counter", "Simulated cost of the requests, in US dollars.", ("model",))
DURATION = Family(
    "understudy_request_duration_seconds",
    "histogram",
    "Time from request to the end of the response.",
    ("provider", "route"),
    DURATION_BOUNDS_S,
)
TTFT = Family(
    "understudy_time_to_first_token_seconds",
    "histogram",
    "Time from request to the first streamed token.",
    ("provider", "model"),
    DURATION_BOUNDS_S,
)
ITL = Family(
    "understudy_inter_token_latency_seconds",
    "histogram",
    "Time between consecutive streamed tokens.",
    ("provider", "model"),
    ITL_BOUNDS_S,
)
FAMILIES = (REQUESTS, TOKENS_IN, TOKENS_OUT, RATE_LIMITED, FAULTS, COST, DURATION, TTFT, ITL)

GAUGE_HELP: Mapping[str, str] = MappingProxyType(
    {"understudy_workers_alive": "Worker processes that the coordinator holds to be alive."}
)
_NO_GAUGES: Mapping[str, float] = MappingProxyType({})

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"'
_LABEL_PAIR = re.compile(_LABEL)
_LABEL_LIST = re.compile(rf"(?:{_LABEL}(?:,{_LABEL})*)?")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = MappingProxyType({"\\": "\\", '"': '"', "n": "\n"})

SampleRole = Literal["value", "bucket", "sum", "count"]


def _sample_names() -> Mapping[str, tuple[Family, SampleRole]]:
    names: dict[str, tuple[Family, SampleRole]] = {}
    for family in FAMILIES:
        if family.kind == "counter":
            names[family.name] = (family, "value")
        else:
            names[family.name + "_bucket"] = (family, "bucket")
            names[family.name + "_sum"] = (family, "sum")
            names[family.name + "_count"] = (family, "count")
    return MappingProxyType(names)


_BY_SAMPLE_NAME = _sample_names()


# --- keys ---------------------------------------------------------------------


def escape_label_value(value: str) -> str:
    """A label value as the Prometheus text format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def unescape_label_value(text: str) -> str:
    """The inverse of :func:`escape_label_value`; an unknown escape stays as written."""
    return _ESCAPE.sub(lambda match: _UNESCAPED.get(match[1], match[0]), text)


def le_label(bound: float) -> str:
    """A bucket bound as Prometheus clients write ``le``: ``0.005``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == math.inf else repr(float(bound))


def sample_key(name: str, labels: Iterable[tuple[str, str]]) -> str:
    """``name{label="value",...}``, the key under which a sample is recorded."""
    pairs = ",".join(f'{label}="{escape_label_value(value)}"' for label, value in labels)
    return f"{name}{{{pairs}}}"


def parse_sample_key(key: str) -> tuple[str, dict[str, str]] | None:
    """The metric name and labels of a key, or None if it is not one that :func:`sample_key` could write."""
    name, brace, rest = key.partition("{")
    if not _METRIC_NAME.fullmatch(name):
        return None
    if not brace:
        return name, {}
    body, closing = rest[:-1], rest[-1:]
    if closing != "}" or not _LABEL_LIST.fullmatch(body):
        return None
    pairs = [(match[1], unescape_label_value(match[2])) for match in _LABEL_PAIR.finditer(body)]
    labels = dict(pairs)
    if len(labels) != len(pairs):
        return None  # a label given twice
    return name, labels


# --- recording ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HistogramKeys:
    bounds_s: tuple[float, ...]
    buckets: tuple[str, ...]  # one per bound, in bound order
    sum: str
    count: str


@dataclass(frozen=True, slots=True)
class _RequestKeys:
    """Every key one (provider, route, status, model) combination records into."""

    requests: str
    tokens_in: str
    tokens_out: str
    rate_limited: str
    faults: str
    cost: str
    duration: _HistogramKeys
    ttft: _HistogramKeys
    itl: _HistogramKeys


def _histogram_keys(family: Family, labels: Sequence[tuple[str, str]]) -> _HistogramKeys:
    return _HistogramKeys(
        bounds_s=family.bounds_s,
        buckets=tuple(sample_key(family.name + "_bucket", [*labels, ("le", le_label(b))]) for b in family.bounds_s),
        sum=sample_key(family.name + "_sum", labels),
        count=sample_key(family.name + "_count", labels),
    )


def _request_keys(provider: str, route: str, status: str, model: str) -> _RequestKeys:
    by_model = [("model", model)]
    by_provider_model = [("provider", provider), ("model", model)]
    return _RequestKeys(
        requests=sample_key(
            REQUESTS.name, [("provider", provider), ("route", route), ("status", status), ("model", model)]
        ),
        tokens_in=sample_key(TOKENS_IN.name, by_model),
        tokens_out=sample_key(TOKENS_OUT.name, by_model),
        rate_limited=sample_key(RATE_LIMITED.name, by_provider_model),
        faults=sample_key(FAULTS.name, by_provider_model),
        cost=sample_key(COST.name, by_model),
        duration=_histogram_keys(DURATION, [("provider", provider), ("route", route)]),
        ttft=_histogram_keys(TTFT, by_provider_model),
        itl=_histogram_keys(ITL, by_provider_model),
    )


def _observe(series: dict[str, float], keys: _HistogramKeys, values_s: Iterable[float]) -> None:
    """Count each value in the bucket of the smallest bound at or above it."""
    bounds_s, buckets = keys.bounds_s, keys.buckets
    total_s = 0.0
    count = 0
    for value_s in values_s:
        bucket = buckets[bisect.bisect_left(bounds_s, value_s)]
        series[bucket] = series.get(bucket, 0) + 1
        total_s += value_s
        count += 1
    if count:
        series[keys.sum] = series.get(keys.sum, 0) + total_s
        series[keys.count] = series.get(keys.count, 0) + count


class MetricSeries:
    """What one worker incarnation has recorded since it started, keyed by sample.

    ``series`` only ever grows; :meth:`snapshot` is what a worker reports.
    """

    __slots__ = ("_memo", "series")

    def __init__(self) -> None:
        self.series: dict[str, float] = {}
        self._memo: dict[tuple[str, str, int, str], _RequestKeys] = {}

    def _keys(self, provider: str, route: str, status: int, model: str) -> _RequestKeys:
        combination = (provider, route, status, model)
        keys = self._memo.get(combination)
        if keys is None:
            if len(self._memo) >= MAX_MEMOISED_COMBINATIONS:
                self._memo.clear()
            keys = self._memo[combination] = _request_keys(provider, route, str(status), model)
        return keys

    def observe_request(
        self,
        *,
        provider: str,
        route: str,
        status: int,
        model: str,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        ttft_s: float | None,
        itl_s: Sequence[float],
        cost_usd: float | None,
        rate_limited: bool,
        fault: bool,
    ) -> None:
        """Record one answered request; times are finite, non-negative seconds."""
        keys = self._keys(provider, route, status, model)
        series = self.series
        series[keys.requests] = series.get(keys.requests, 0) + 1
        if tokens_in > 0:
            series[keys.tokens_in] = series.get(keys.tokens_in, 0) + tokens_in
        if tokens_out > 0:
            series[keys.tokens_out] = series.get(keys.tokens_out, 0) + tokens_out
        if rate_limited:
            series[keys.rate_limited] = series.get(keys.rate_limited, 0) + 1
        if fault:
            series[keys.faults] = series.get(keys.faults, 0) + 1
        if cost_usd:
            series[keys.cost] = series.get(keys.cost, 0) + cost_usd
        _observe(series, keys.duration, (latency_s,))
        if ttft_s is not None:
            _observe(series, keys.ttft, (ttft_s,))
        if itl_s:
            _observe(series, keys.itl, itl_s)

    def snapshot(self) -> dict[str, float]:
        return dict(self.series)


# --- rendering ----------------------------------------------------------------


@dataclass(slots=True)
class _HistogramTotals:
    bucket_counts: dict[float, float] = field(default_factory=dict)  # per bucket, by bound
    sum_s: float = 0.0


@dataclass(slots=True)
class _Totals:
    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)
    histograms: dict[str, dict[tuple[str, ...], _HistogramTotals]] = field(default_factory=dict)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bucket_bound(family: Family, le: str) -> float | None:
    try:
        bound = float(le)
    except ValueError:
        return None
    return bound if bound in family.bounds_s else None


def _add_sample(totals: _Totals, key: str, value: float) -> None:
    """Add one sample to ``totals``, or nothing if it is not one this module records."""
    parsed = parse_sample_key(key)
    if parsed is None or parsed[0] not in _BY_SAMPLE_NAME:
        return
    name, labels = parsed
    family, role = _BY_SAMPLE_NAME[name]
    le = labels.pop("le", None) if role == "bucket" else None
    if set(labels) != set(family.labels):
        return
    bound = _bucket_bound(family, le) if le is not None else None
    if role == "count" or (role == "bucket" and bound is None):
        return  # ``_count`` is recorded but not read: Prometheus takes the count from the +Inf bucket
    label_values = tuple(labels[label] for label in family.labels)
    if role == "value":
        counters = totals.counters.setdefault(family.name, {})
        counters[label_values] = counters.get(label_values, 0) + value
        return
    histogram = totals.histograms.setdefault(family.name, {}).setdefault(label_values, _HistogramTotals())
    if bound is None:
        histogram.sum_s += value
    else:
        histogram.bucket_counts[bound] = histogram.bucket_counts.get(bound, 0) + value


def _total_series(series: Mapping[str, float]) -> _Totals:
    """The samples of ``series`` that this module records, grouped by family and labels."""
    totals = _Totals()
    for key, value in series.items():
        if isinstance(key, str) and _is_finite_number(value):
            _add_sample(totals, key, value)
    return totals


def cumulative_buckets(family: Family, bucket_counts: Mapping[float, float]) -> list[tuple[str, float]]:
    """``(le, count at or below le)`` for every bound of ``family``, the last being +Inf."""
    running = 0.0
    buckets = []
    for bound in family.bounds_s:
        running += bucket_counts.get(bound, 0)
        buckets.append((le_label(bound), running))
    return buckets


def _families(totals: _Totals, extra_gauges: Mapping[str, float]) -> Iterator[Metric]:
    for family in FAMILIES:
        if family.kind == "counter":
            counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
            for label_values, value in sorted(totals.counters.get(family.name, {}).items()):
                counter.add_metric(label_values, value)
            yield counter
        else:
            histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
            for label_values, held in sorted(totals.histograms.get(family.name, {}).items()):
                histogram.add_metric(label_values, cumulative_buckets(family, held.bucket_counts), held.sum_s)
            yield histogram
    for name, value in sorted(extra_gauges.items()):
        if _is_gauge_name(name) and _is_finite_number(value):
            yield GaugeMetricFamily(name, GAUGE_HELP.get(name, "Gauge kept by the coordinator."), value=value)


def _is_gauge_name(name: object) -> bool:
    """A valid metric name that shows no sample of the recorded families."""
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        return False
    return name not in _BY_SAMPLE_NAME and all(name != family.name for family in FAMILIES)


class _Collected:
    """A prometheus_client collector that hands over families built beforehand."""

    __slots__ = ("metrics",)

    def __init__(self, metrics: tuple[Metric, ...]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def render(series: Mapping[str, float], *, extra_gauges: Mapping[str, float] = _NO_GAUGES) -> tuple[bytes, str]:
    """``(body, content type)`` of ``GET /metrics`` for ``series``, summed over workers, and ``extra_gauges``."""
    registry = CollectorRegistry()
    registry.register(_Collected(tuple(_families(_total_series(series), extra_gauges))))
    return generate_latest(registry), CONTENT_TYPE_LATEST
