"""The mocker: Bifrost-style rules that decide how each request is answered.

Theory of operation: :func:`load_mocker` validates a ``mocker:`` config
section (see :mod:`sim.mocker_load`) into an immutable :class:`Mocker`. Per
request, :meth:`Mocker.decide` walks the enabled rules in evaluation order
(higher ``priority`` first, file order among equals). The first rule whose
conditions hold *and* whose ``probability`` draw succeeds applies: one of its
responses is chosen by weight, its template (if any) is rendered and its
latency (else the global latency) is drawn. A rule whose probability draw
fails lets the next rule try. When no rule applies, or the mocker is
disabled, the ``default_behavior`` answers: ``success`` lets the built-in
synthesiser generate the reply, ``error`` answers a 500, ``passthrough``
sends the request upstream.

Every random draw comes from the ``random.Random`` the caller passes in, in a
fixed order (probability, response, latency, template), so a seeded Random
reproduces a decision exactly. ``decide`` mutates nothing but that Random
(and, for the Faker-backed template methods, which Random a shared Faker
generator reads from), so one Mocker serves every request of a thread.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from sim.mocker_load import MockerConfigError, MockerSpec, load_spec
from sim.mocker_rules import (
    ERROR,
    GENERATE,
    NO_LATENCY,
    PASSTHROUGH,
    SUCCESS,
    Decision,
    ErrorSpec,
    Latency,
    RequestFacts,
    Rule,
)

__all__ = [
    "DEFAULT_ERROR",
    "Decision",
    "ErrorSpec",
    "Mocker",
    "MockerConfigError",
    "RequestFacts",
    "load_mocker",
]

DEFAULT_ERROR = ErrorSpec(
    message="understudy mocker: no rule matched and default_behavior is error",
    type="server_error",
    code=None,
    status_code=500,
)
_DEFAULT_KIND = {SUCCESS: GENERATE, ERROR: ERROR, PASSTHROUGH: PASSTHROUGH}


@dataclass(frozen=True, slots=True, init=False)
class Mocker:
    """A loaded mocker section; build it with :func:`load_mocker`."""

    enabled: bool
    default_behavior: str
    rule_names: tuple[str, ...]
    global_latency: Latency | None
    _plans: tuple[_Plan, ...]
    _default: Decision
    _default_latency: Latency | None

    def __init__(self, spec: MockerSpec) -> None:
        latency = spec.global_latency
        kind = _DEFAULT_KIND[spec.default_behavior]
        default = Decision(
            rule=None,
            kind=kind,
            message=None,
            model=None,
            finish_reason=None,
            usage=None,
            custom_fields=None,
            error=DEFAULT_ERROR if kind == ERROR else None,
            allow_fallbacks=True,
            latency_ms=0.0 if latency is None else latency.min_ms,
        )
        fields = {
            "enabled": spec.enabled,
            "default_behavior": spec.default_behavior,
            "rule_names": spec.rule_names,
            "global_latency": latency,
            "_plans": tuple(_plan(rule, latency) for rule in spec.rules) if spec.enabled else (),
            "_default": default,
            # None when the default's latency never varies, so it can be answered without building a Decision.
            "_default_latency": latency if latency is not None and latency.max_ms > latency.min_ms else None,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def decide(self, facts: RequestFacts, rand: random.Random) -> Decision:
        """Decide how to answer the request described by ``facts``, drawing randomness from ``rand``."""
        for rule, latency, fixed in self._plans:
            if not rule.conditions.match(facts):
                continue
            if rule.probability < 1.0 and rand.random() >= rule.probability:
                continue
            response = rule.choose(rand)
            if fixed is not None and (decision := fixed.get(id(response))) is not None:
                return decision
            return response.decide(rule.name, facts, rand, latency.draw_ms(rand))
        if self._default_latency is None:
            return self._default
        return _with_latency(self._default, self._default_latency.draw_ms(rand))


# A rule, its effective latency, and the prebuilt Decisions of those responses that never vary
# (static text, fixed latency), keyed by id(response): building a frozen Decision is most of a request's cost.
_Plan = tuple[Rule, Latency, dict[int, Decision] | None]


def _plan(rule: Rule, global_latency: Latency | None) -> _Plan:
    latency = rule.latency or global_latency or NO_LATENCY
    if latency.max_ms > latency.min_ms:
        return rule, latency, None
    fixed = {
        id(response): response.decide(rule.name, _NO_FACTS, random.Random(0), latency.min_ms)
        for response in rule.responses
        if response.message is None or response.message.static is not None
    }
    return rule, latency, fixed


_NO_FACTS = RequestFacts(provider="", model="", message_text="", last_user_message="", size_bytes=0, headers={})


def _with_latency(decision: Decision, latency_ms: float) -> Decision:
    return dataclasses.replace(decision, latency_ms=latency_ms)


def load_mocker(document: Any, *, path: str = "mocker") -> Mocker:
    """Build a :class:`Mocker` from a decoded ``mocker:`` section; None or ``{}`` gives a disabled one.

    Raises :class:`MockerConfigError` listing every problem, each as ``"path: message"``.
    """
    return Mocker(load_spec(document, path=path))
