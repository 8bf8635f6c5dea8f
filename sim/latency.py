"""Per-model latency profiles: how long a simulated answer takes to start and to stream.

Theory of operation: :func:`load_latency` validates a ``latency:`` config
section into an immutable :class:`LatencyConfig`, collecting every problem
with its path before raising :class:`LatencyConfigError`. Per request,
:meth:`LatencyConfig.profile_for` picks the model's :class:`LatencyProfile`
(exact name, then globs in file order, then the name without a dated
snapshot suffix, then ``default``) and :meth:`LatencyProfile.plan` turns it
into a :class:`Timing`: the delay before the first token and the gap before
each later one. Nothing here sleeps; the adapter waits out the plan.

Cost: the time to first token is one draw per request. Drawing every
inter-token gap with ``rand.gauss`` costs about 0.4 µs a token, too much for
answers of a thousand tokens, so a profile whose gaps vary precomputes the
gap distribution as a table of :data:`ITL_TABLE_SIZE` equal-probability
quantiles (in seconds) and picks from it with one ``rand.randbytes`` call:
about 30 µs for a thousand tokens. The table stops at the 1/8192 quantile at
either end, which a stream of gaps never notices. Every draw comes from the
``random.Random`` the caller passes in, so a seeded Random reproduces a plan.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Final

from sim.errors import SectionError
from sim.model_table import ModelTable

__all__ = [
    "DISTRIBUTION_TYPES",
    "ITL_TABLE_SIZE",
    "Distribution",
    "LatencyConfig",
    "LatencyConfigError",
    "LatencyProfile",
    "Timing",
    "bifrost_latency",
    "load_latency",
]

FIXED, UNIFORM, NORMAL, LOGNORMAL, PERCENTILES = "fixed", "uniform", "normal", "lognormal", "percentiles"
DISTRIBUTION_TYPES: Final = (FIXED, UNIFORM, NORMAL, LOGNORMAL, PERCENTILES)
_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    FIXED: ("ms",),
    UNIFORM: ("min_ms", "max_ms"),
    NORMAL: ("mean_ms", "stddev_ms"),
    LOGNORMAL: ("median_ms", "sigma"),
    PERCENTILES: ("p50_ms", "p90_ms", "p99_ms"),
}
_PROFILE_FIELDS: Final = ("ttft", "itl", "tokens_per_second", "prefill_ms_per_token")
_Z90: Final = 1.2816
_Z99: Final = 2.3263
_STANDARD_NORMAL: Final = NormalDist()
# 2**12 quantiles, indexed by the top 12 bits of a random 16-bit word.
ITL_TABLE_SIZE: Final = 4096
_INDEX_SHIFT: Final = 4


class LatencyConfigError(SectionError):
    """The ``latency_profiles`` section is invalid."""

    section = "latency"


@dataclass(frozen=True, slots=True)
class Distribution:
    """A random duration in milliseconds; every draw is clamped at 0.

    ``fixed``: always ``center_ms``. ``uniform``: even over ``center_ms ±
    spread_ms``. ``normal``: mean ``center_ms``, standard deviation
    ``spread_ms``. ``lognormal``: median ``center_ms`` (> 0), log-space
    standard deviation ``sigma``. Build one with the class methods; a
    ``percentiles`` spec becomes a fitted lognormal. Raises ValueError for
    parameters no distribution has.
    """

    kind: str
    center_ms: float
    spread_ms: float = 0.0
    sigma: float = 0.0
    _mu: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (FIXED, UNIFORM, NORMAL, LOGNORMAL):
            raise ValueError(f"unknown distribution kind {self.kind!r}")
        if not all(math.isfinite(v) for v in (self.center_ms, self.spread_ms, self.sigma)):
            raise ValueError("distribution parameters must be finite")
        if self.spread_ms < 0 or self.sigma < 0:
            raise ValueError("spread_ms and sigma must be >= 0")
        if self.kind == LOGNORMAL and self.center_ms <= 0:
            raise ValueError("a lognormal median must be > 0")
        object.__setattr__(self, "_mu", math.log(self.center_ms) if self.kind == LOGNORMAL else 0.0)

    @classmethod
    def fixed(cls, ms: float) -> Distribution:
        return cls(FIXED, ms)

    @classmethod
    def uniform(cls, min_ms: float, max_ms: float) -> Distribution:
        if max_ms < min_ms:
            raise ValueError("max_ms must be >= min_ms")
        return cls(UNIFORM, (min_ms + max_ms) / 2, (max_ms - min_ms) / 2)

    @classmethod
    def normal(cls, mean_ms: float, stddev_ms: float) -> Distribution:
        return cls(NORMAL, mean_ms, stddev_ms)

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float) -> Distribution:
        return cls(LOGNORMAL, median_ms, sigma=sigma)

    @classmethod
    def from_percentiles(cls, p50_ms: float, p90_ms: float | None = None, p99_ms: float | None = None) -> Distribution:
        """The lognormal through ``p50_ms`` whose sigma averages the fits to the given upper percentiles."""
        if p50_ms <= 0 or (p90_ms is None and p99_ms is None):
            raise ValueError("needs p50_ms > 0 and at least one of p90_ms, p99_ms")
        fits = [math.log(p / p50_ms) / z for p, z in ((p90_ms, _Z90), (p99_ms, _Z99)) if p is not None]
        if any(sigma <= 0 for sigma in fits) or (p90_ms is not None and p99_ms is not None and p99_ms <= p90_ms):
            raise ValueError("each percentile must exceed the one before")
        return cls(LOGNORMAL, p50_ms, sigma=sum(fits) / len(fits))

    def draw(self, rand: random.Random) -> float:
        """One duration in milliseconds, never negative."""
        kind = self.kind
        if kind == FIXED:
            value = self.center_ms
        elif kind == UNIFORM:
            value = rand.uniform(self.center_ms - self.spread_ms, self.center_ms + self.spread_ms)
        elif kind == NORMAL:
            value = rand.gauss(self.center_ms, self.spread_ms)
        else:
            return rand.lognormvariate(self._mu, self.sigma)
        return value if value > 0.0 else 0.0

    def quantile_ms(self, p: float) -> float:
        """The duration a draw stays at or below with probability ``p`` (0 < p < 1)."""
        if not 0.0 < p < 1.0:
            raise ValueError("p must be between 0 and 1, exclusive")
        if self.kind == FIXED:
            value = self.center_ms
        elif self.kind == UNIFORM:
            value = self.center_ms + self.spread_ms * (2.0 * p - 1.0)
        elif self.kind == NORMAL:
            value = self.center_ms + self.spread_ms * _STANDARD_NORMAL.inv_cdf(p)
        else:
            return math.exp(self._mu + self.sigma * _STANDARD_NORMAL.inv_cdf(p))
        return max(value, 0.0)

    @property
    def median_ms(self) -> float:
        # Clamping at 0 is monotone, so it clamps the median too.
        return max(self.center_ms, 0.0)

    @property
    def mean_ms(self) -> float:
        """The mean of the clamped draws."""
        c, s = self.center_ms, self.spread_ms
        if self.kind == LOGNORMAL:
            return c * math.exp(self.sigma**2 / 2)
        if self.kind == FIXED or s == 0.0:
            return max(c, 0.0)
        if self.kind == UNIFORM:
            return c if c >= s else max(c + s, 0.0) ** 2 / (4 * s)
        z = c / s
        return c * _STANDARD_NORMAL.cdf(z) + s * _STANDARD_NORMAL.pdf(z)


@dataclass(frozen=True, slots=True)
class Timing:
    """When the tokens of one answer arrive: ``first_s`` after the request, then each ``gaps_s`` apart."""

    first_s: float
    gaps_s: tuple[float, ...]

    @property
    def total_s(self) -> float:
        return self.first_s + sum(self.gaps_s)


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How one model answers in time.

    ``ttft`` is the time to first token, to which ``prefill_ms_per_token``
    adds per prompt token; ``itl`` is the time between tokens, or None for
    tokens that arrive together.
    """

    ttft: Distribution
    itl: Distribution | None = None
    prefill_ms_per_token: float = 0.0
    _gap_s: float = field(init=False, repr=False, compare=False)
    _table_s: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prefill_ms_per_token) and self.prefill_ms_per_token >= 0):
            raise ValueError("prefill_ms_per_token must be >= 0")
        itl = self.itl
        table: tuple[float, ...] = ()
        if itl is not None and itl.kind != FIXED and (itl.spread_ms > 0 or itl.sigma > 0):
            table = tuple(itl.quantile_ms((i + 0.5) / ITL_TABLE_SIZE) / 1000.0 for i in range(ITL_TABLE_SIZE))
        object.__setattr__(self, "_gap_s", 0.0 if itl is None else itl.median_ms / 1000.0)
        object.__setattr__(self, "_table_s", table)

    def plan(self, *, prompt_tokens: int, output_tokens: int, rand: random.Random) -> Timing:
        """Draw the timing of an answer of ``output_tokens`` tokens to ``prompt_tokens`` (negative counts as 0)."""
        first_ms = self.ttft.draw(rand) + self.prefill_ms_per_token * max(prompt_tokens, 0)
        count = output_tokens - 1
        gaps: tuple[float, ...]
        if count <= 0:
            gaps = ()
        elif self._table_s:
            table = self._table_s
            words = memoryview(rand.randbytes(2 * count)).cast("H")
            gaps = tuple([table[word >> _INDEX_SHIFT] for word in words])
        else:
            gaps = (self._gap_s,) * count
        return Timing(first_ms / 1000.0, gaps)


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    """A loaded ``latency_profiles`` section; ``models`` keeps file order, as globs are tried in it."""

    default: LatencyProfile | None = None
    models: tuple[tuple[str, LatencyProfile], ...] = ()
    _table: ModelTable[LatencyProfile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", ModelTable(self.models))

    def profile_for(self, model: str) -> LatencyProfile | None:
        """The profile of ``model`` (looked up as :mod:`sim.model_table` does), else ``default``."""
        profile = self._table.get(model)
        return self.default if profile is None else profile


def bifrost_latency(latency_ms: float, jitter_ms: float) -> LatencyProfile | None:
    """Bifrost's mock ``-latency MS -jitter MS``: the whole answer after latency ± jitter ms (clamped at 0).

    None when both are 0; ValueError when either is negative or not finite.
    """
    if not (math.isfinite(latency_ms) and math.isfinite(jitter_ms) and latency_ms >= 0 and jitter_ms >= 0):
        raise ValueError("latency_ms and jitter_ms must be finite and >= 0")
    if latency_ms == 0 and jitter_ms == 0:
        return None
    ttft = Distribution(UNIFORM, latency_ms, jitter_ms) if jitter_ms else Distribution.fixed(latency_ms)
    return LatencyProfile(ttft)


def load_latency(raw: object, *, where: str = "latency") -> LatencyConfig:
    """Validate a ``latency`` section; None or ``{}`` is an empty config.

    Raises :class:`LatencyConfigError` listing every problem, each as ``"path: message"``.
    """
    if raw is None or (isinstance(raw, Mapping) and not raw):
        return LatencyConfig()
    errors: list[str] = []
    doc = _mapping(raw, where, ("default", "models"), errors)
    if doc is None:
        raise LatencyConfigError(errors)
    default = _profile(doc["default"], f"{where}.default", errors) if "default" in doc else None
    models: list[tuple[str, LatencyProfile]] = []
    table = doc.get("models", {})
    if not isinstance(table, Mapping):
        errors.append(f"{where}.models: must be a mapping of model name or glob to profile, got {_kind(table)}")
        table = {}
    for name, spec in table.items():
        if not isinstance(name, str) or not name:
            errors.append(f"{where}.models: model names must be non-empty strings, got {name!r}")
            continue
        profile = _profile(spec, f"{where}.models.{name}", errors)
        if profile is not None:
            models.append((name, profile))
    if errors:
        raise LatencyConfigError(errors)
    return LatencyConfig(default, tuple(models))


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _mapping(value: object, path: str, allowed: tuple[str, ...], errors: list[str]) -> Mapping[str, object] | None:
    if not isinstance(value, Mapping):
        errors.append(f"{path}: must be a mapping, got {_kind(value)}")
        return None
    for key in value:
        if key not in allowed:
            errors.append(f"{path}.{key}: unknown field; allowed: {', '.join(allowed)}")
    return value


def _number(value: object, path: str, errors: list[str], *, positive: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors.append(f"{path}: must be a finite number, got {value!r}")
        return None
    if value < 0 or (positive and value == 0):
        errors.append(f"{path}: must be {'> 0' if positive else '>= 0'}, got {value!r}")
        return None
    return float(value)


def _profile(value: object, path: str, errors: list[str]) -> LatencyProfile | None:
    doc = _mapping(value, path, _PROFILE_FIELDS, errors)
    if doc is None:
        return None
    if "ttft" not in doc:
        errors.append(f"{path}.ttft: is required")
    ttft = _distribution(doc["ttft"], f"{path}.ttft", errors) if "ttft" in doc else None
    itl = _distribution(doc["itl"], f"{path}.itl", errors) if "itl" in doc else None
    itl_ok = "itl" not in doc or itl is not None
    if "tokens_per_second" in doc:
        tps = _number(doc["tokens_per_second"], f"{path}.tokens_per_second", errors, positive=True)
        itl_ok = tps is not None
        if "itl" in doc:
            errors.append(f"{path}: give itl or tokens_per_second, not both")
            itl_ok = False
        elif tps is not None:
            itl = Distribution.fixed(1000.0 / tps)
    prefill = 0.0
    if "prefill_ms_per_token" in doc:
        prefill = _number(doc["prefill_ms_per_token"], f"{path}.prefill_ms_per_token", errors) or 0.0
    if ttft is None or not itl_ok:
        return None
    return LatencyProfile(ttft, itl, prefill)


def _distribution(value: object, path: str, errors: list[str]) -> Distribution | None:
    if not isinstance(value, Mapping):
        # A bare number is a fixed duration.
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path}: must be a number of ms or a mapping with a type, got {_kind(value)}")
            return None
        ms = _number(value, path, errors)
        return None if ms is None else Distribution.fixed(ms)
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        shown = "nothing" if "type" not in value else repr(kind)
        errors.append(f"{path}.type: must be one of {', '.join(DISTRIBUTION_TYPES)}, got {shown}")
        return None
    names = _FIELDS[kind]
    before = len(errors)
    _mapping(value, path, ("type", *names), errors)
    given = {name: _number(value[name], f"{path}.{name}", errors) for name in names if name in value}
    required = ("p50_ms",) if kind == PERCENTILES else names
    for name in required:
        if name not in value:
            errors.append(f"{path}.{name}: is required for a {kind} distribution")
    if len(errors) > before:
        return None
    return _checked(kind, given, path, errors)


def _checked(kind: str, given: Mapping[str, float | None], path: str, errors: list[str]) -> Distribution | None:
    """The distribution of well-typed, non-negative fields; errors for values that do not fit together."""
    v = {name: number for name, number in given.items() if number is not None}
    if kind == FIXED:
        return Distribution.fixed(v["ms"])
    if kind == UNIFORM:
        if v["max_ms"] < v["min_ms"]:
            errors.append(f"{path}.max_ms: must be >= min_ms ({v['min_ms']:g})")
            return None
        return Distribution.uniform(v["min_ms"], v["max_ms"])
    if kind == NORMAL:
        return Distribution.normal(v["mean_ms"], v["stddev_ms"])
    if kind == LOGNORMAL:
        if v["median_ms"] <= 0:
            errors.append(f"{path}.median_ms: must be > 0")
            return None
        return Distribution.lognormal(v["median_ms"], v["sigma"])
    before = len(errors)
    if v["p50_ms"] <= 0:
        errors.append(f"{path}.p50_ms: must be > 0")
    if "p90_ms" not in v and "p99_ms" not in v:
        errors.append(f"{path}: a percentiles distribution needs p90_ms or p99_ms (or both)")
    previous = "p50_ms"
    for name in ("p90_ms", "p99_ms"):
        if name in v:
            if v[name] <= v[previous]:
                errors.append(f"{path}.{name}: must be greater than {previous}")
            previous = name
    if len(errors) > before:
        return None
    return Distribution.from_percentiles(v["p50_ms"], v.get("p90_ms"), v.get("p99_ms"))
