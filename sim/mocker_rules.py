"""The compiled values of the mocker: conditions, responses, latencies, rules, decisions.

Everything here is built once by :mod:`sim.mocker_load` and never changes:
regular expressions are compiled, model globs are folded into one regex, and
response weights are turned into a cumulative table, so that matching a
request costs a few comparisons and at most one ``random()`` per draw.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.templates import Template

SUCCESS, ERROR, PASSTHROUGH, GENERATE = "success", "error", "passthrough", "generate"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the mocker may look at in a request; ``headers`` has lower-case names."""

    provider: str
    model: str
    message_text: str
    last_user_message: str
    size_bytes: int
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """An error to answer with; ``type`` and ``code`` may be left to the provider's defaults."""

    message: str
    type: str | None
    code: str | None
    status_code: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request.

    ``kind`` is ``success`` (answer ``message``), ``error`` (answer ``error``),
    ``passthrough`` (send it to a real upstream) or ``generate`` (let the
    built-in synthesiser answer). ``rule`` names the rule that applied, or is
    None when none did; the caller counts it as that rule's hit.
    """

    rule: str | None
    kind: str
    message: str | None
    model: str | None
    finish_reason: str | None
    usage: Mapping[str, int] | None
    custom_fields: Mapping[str, Any] | None
    error: ErrorSpec | None
    allow_fallbacks: bool
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Latency:
    """``fixed``: always ``min_ms``; ``uniform``: drawn evenly from ``min_ms`` to ``max_ms``."""

    type: str
    min_ms: float
    max_ms: float

    def draw_ms(self, rand: random.Random) -> float:
        if self.max_ms <= self.min_ms:
            return self.min_ms
        return rand.uniform(self.min_ms, self.max_ms)


NO_LATENCY = Latency("fixed", 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Conditions:
    """All given conditions must hold; None (or empty) means "any"."""

    providers: frozenset[str] | None = None
    exact_models: frozenset[str] = frozenset()
    model_globs: re.Pattern[str] | None = None
    message_regex: re.Pattern[str] | None = None
    size_min: int = 0
    size_max: int | None = None
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @property
    def has_models(self) -> bool:
        return bool(self.exact_models) or self.model_globs is not None

    def match(self, facts: RequestFacts) -> bool:
        # Cheapest tests first: set lookups, then sizes, then regexes.
        if self.providers is not None and facts.provider not in self.providers:
            return False
        if self.has_models and facts.model not in self.exact_models:
            if self.model_globs is None or self.model_globs.match(facts.model) is None:
                return False
        if facts.size_bytes < self.size_min or (self.size_max is not None and facts.size_bytes > self.size_max):
            return False
        for name, pattern in self.headers:
            value = facts.headers.get(name)
            if value is None or pattern.search(value) is None:
                return False
        return self.message_regex is None or self.message_regex.search(facts.message_text) is not None


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """One possible answer of a rule; ``message`` is set for success, ``error`` for error."""

    kind: str
    weight: float
    message: Template | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None
    custom_fields: Mapping[str, Any] | None = None
    error: ErrorSpec | None = None
    allow_fallbacks: bool = True

    def decide(self, rule: str | None, facts: RequestFacts, rand: random.Random, latency_ms: float) -> Decision:
        return Decision(
            rule=rule,
            kind=self.kind,
            message=None if self.message is None else self.message.render(facts, rand),
            model=self.model,
            finish_reason=self.finish_reason,
            usage=self.usage,
            custom_fields=self.custom_fields,
            error=self.error,
            allow_fallbacks=self.allow_fallbacks,
            latency_ms=latency_ms,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; ``cum_weights`` is the running sum of its responses' weights."""

    name: str
    enabled: bool
    priority: int
    probability: float
    conditions: Conditions
    responses: tuple[ResponseSpec, ...]
    cum_weights: tuple[float, ...]
    latency: Latency | None

    def choose(self, rand: random.Random) -> ResponseSpec:
        if len(self.responses) == 1:
            return self.responses[0]
        point = rand.random() * self.cum_weights[-1]
        # min() guards the float edge where point rounds up to the total.
        return self.responses[min(bisect.bisect_right(self.cum_weights, point), len(self.responses) - 1)]
