"""Injected failures and the 429 timer: the built-in ``faults`` and ``timer`` plugins.

Theory of operation. Failures are drawn from a :class:`FailureBudget`, not by
an independent coin per request: the budget adds the failure rate to a credit
on every request and fails the request that brings the credit to one. Each
worker's observed rate is then the configured one within one request, so the
cluster's (the sum over workers) matches it however the requests spread, which
independent coins only do on average. The rate is re-drawn within
``percent ± jitter`` every :data:`WINDOW` requests (the Bifrost mock server's
jitter), and each budget starts at a random phase so workers do not fail in step.

A failure is one of :data:`FAULT_KINDS`, chosen by the configured weights:
an HTTP error (429, 500, 503, 529) short-circuits the pipeline with the
provider's error shape; the delivery faults (``stream_cut``, ``stream_error``,
``hang``, ``trickle``) let the provider answer and tell the worker, through the
context, how to spoil the delivery.

The timer (the mock server's ``-tpm SECONDS``) answers every request with 429
once the cluster has been up that long, until ``tpm_duration`` more seconds have
passed (forever without one). Its clock is the cluster's, passed in as a
function, so every worker flips at the same moment and a restarted worker
follows the cluster's timeline.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sim.errors import SectionError, config_section
from sim.limits_plugin import api_key
from sim.pipeline import REFUSAL, BasePlugin, Context, PluginError, PluginRequest, ShortCircuit

WINDOW = 20  # requests per drawn rate
#: Context key: the delivery fault the worker applies to the answer ("stream_cut", ...).
FAULT = "faults.delivery"
#: Context key: present when this request was picked to fail (counted as ``faults_injected``).
FAULT_INJECTED = "faults.injected"

HTTP_FAULTS = ("http_429", "http_500", "http_503", "http_529")
DELIVERY_FAULTS = ("stream_cut", "stream_error", "hang", "trickle")
FAULT_KINDS = HTTP_FAULTS + DELIVERY_FAULTS
MODEL_FIELDS = ("failure_percent", "failure_jitter", "mix")

# The Bifrost mock server's words for its failures and its timer's 429.
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
TIMER_MESSAGE = "Rate limit exceeded. Please retry after some time."


class FaultsConfigError(SectionError):
    """The ``faults`` section is invalid."""

    section = "faults"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """How often requests fail (percent of requests, ± jitter points) and what a failure is."""

    percent: float
    jitter: float = 0.0
    mix: tuple[tuple[str, float], ...] = (("http_500", 1.0),)

    def choose(self, rand: random.Random) -> str:
        if len(self.mix) == 1:
            return self.mix[0][0]
        kinds = [kind for kind, _ in self.mix]
        return rand.choices(kinds, weights=[weight for _, weight in self.mix])[0]


class FailureBudget:
    """Decides which requests fail so that the observed rate is the configured one within one request."""

    __slots__ = ("_credit", "_high", "_left", "_low", "_rand", "_rate")

    def __init__(self, spec: FaultSpec, rand: random.Random) -> None:
        self._rand = rand
        self._low = max(0.0, spec.percent - spec.jitter) / 100
        self._high = min(100.0, spec.percent + spec.jitter) / 100
        self._credit = rand.random()  # a random phase: workers do not fail in step
        self._left = 0
        self._rate = 0.0

    def should_fail(self) -> bool:
        if self._left == 0:
            self._left = WINDOW
            self._rate = self._low if self._low == self._high else self._rand.uniform(self._low, self._high)
        self._left -= 1
        self._credit += self._rate
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """The failure specs: one for all requests, and per model (exact or glob, first match wins)."""

    default: FaultSpec | None = None
    models: tuple[tuple[str, FaultSpec], ...] = ()
    retry_after_s: float = 1.0
    hang_s: float = 600.0
    trickle_ms: float = 500.0
    _cache: dict[str, FaultSpec | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.models)

    def spec_for(self, model: str) -> FaultSpec | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = next((spec for name, spec in self.models if name == model), None)
        if found is None:
            found = next((spec for name, spec in self.models if fnmatch.fnmatchcase(model, name)), self.default)
        if len(self._cache) < 4096:
            self._cache[model] = found
        return found


def load_faults(raw: object, *, percent: float = 0.0, jitter: float = 0.0, where: str = "faults") -> FaultsConfig:
    """The ``faults:`` section plus the mock server's ``--failure-percent``/``--failure-jitter``.

    Every problem is reported at once, each with its path.
    """
    errors: list[str] = []
    known = {"failure_percent", "failure_jitter", "mix", "models", "retry_after_s", "hang_s", "trickle_ms"}
    section = config_section(raw, where, known, errors)
    mix = _mix(section.get("mix"), f"{where}.mix", errors)
    percent = _number(section.get("failure_percent", percent), f"{where}.failure_percent", errors, high=100)
    jitter = _number(section.get("failure_jitter", jitter), f"{where}.failure_jitter", errors, high=100)
    default = FaultSpec(percent, jitter, mix) if percent > 0 or jitter > 0 else None
    models: list[tuple[str, FaultSpec]] = []
    raw_models = section.get("models", {})
    if not isinstance(raw_models, Mapping):
        errors.append(f"{where}.models: must map model names (or globs) to failure settings")
        raw_models = {}
    for name, entry in raw_models.items():
        path = f"{where}.models.{name}"
        if not isinstance(entry, Mapping):
            errors.append(f"{path}: must be a mapping")
            continue
        errors += [f"{path}.{key}: unknown field" for key in entry if key not in MODEL_FIELDS]
        models.append(
            (
                str(name),
                FaultSpec(
                    _number(entry.get("failure_percent", 0), f"{path}.failure_percent", errors, high=100),
                    _number(entry.get("failure_jitter", 0), f"{path}.failure_jitter", errors, high=100),
                    _mix(entry["mix"], f"{path}.mix", errors) if "mix" in entry else mix,
                ),
            )
        )
    config = FaultsConfig(
        default,
        tuple(models),
        retry_after_s=_number(section.get("retry_after_s", 1.0), f"{where}.retry_after_s", errors),
        hang_s=_number(section.get("hang_s", 600.0), f"{where}.hang_s", errors),
        trickle_ms=_number(section.get("trickle_ms", 500.0), f"{where}.trickle_ms", errors),
    )
    if errors:
        raise FaultsConfigError(errors)
    return config


def _number(value: object, path: str, errors: list[str], *, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        errors.append(f"{path}: must be a number >= 0")
        return 0.0
    if high is not None and value > high:
        errors.append(f"{path}: must be at most {high:g}")
        return float(high)
    return float(value)


def _mix(raw: object, path: str, errors: list[str]) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return (("http_500", 1.0),)
    if not isinstance(raw, Mapping) or not raw:
        errors.append(f"{path}: must map fault kinds to weights, e.g. {{http_500: 3, stream_cut: 1}}")
        return (("http_500", 1.0),)
    mix: list[tuple[str, float]] = []
    for kind, weight in raw.items():
        if kind not in FAULT_KINDS:
            errors.append(f"{path}.{kind}: unknown fault kind (one of {', '.join(FAULT_KINDS)})")
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            errors.append(f"{path}.{kind}: weight must be a number > 0")
        else:
            mix.append((str(kind), float(weight)))
    return tuple(mix) or (("http_500", 1.0),)


def fault_error(kind: str, *, provider: str, retry_after_s: float = 1.0) -> PluginError:
    """The error answer of an HTTP fault, in words each provider's clients know."""
    anthropic = provider == "anthropic"
    if kind == "http_429":
        seconds = max(0.0, retry_after_s)
        headers = ((b"retry-after", f"{seconds:g}".encode()), (b"retry-after-ms", f"{seconds * 1000:.0f}".encode()))
        if anthropic:
            return PluginError(
                429, "Number of requests has exceeded your rate limit.", type="rate_limit_error", headers=headers
            )
        return PluginError(
            429, "Rate limit reached for requests.", type="requests", code="rate_limit_exceeded", headers=headers
        )
    if kind == "http_503":
        message = "The engine is currently overloaded, please try again later."
        return PluginError(503, message, type="api_error" if anthropic else "server_error")
    if kind == "http_529":
        return PluginError(529, "Overloaded", type="overloaded_error" if anthropic else "server_error")
    if anthropic:
        return PluginError(500, "Internal server error", type="api_error")
    return PluginError(500, SERVER_ERROR, type="server_error", code="internal_server_error")


class FaultsPlugin(BasePlugin):
    """Fails the configured share of requests, in the configured ways: one budget per failure spec."""

    name = "faults"

    def __init__(
        self, config: FaultsConfig, rand: random.Random, *, by_key: Mapping[str, FaultsConfig] | None = None
    ) -> None:
        self.config = config
        self.by_key = dict(by_key or {})  # an API key's own faults replace the others for its requests
        self._rand = rand
        self._budgets: dict[FaultSpec, FailureBudget] = {}

    @property
    def enabled(self) -> bool:
        return self.config.enabled or bool(self.by_key)

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        config = self.config
        if self.by_key:
            config = self.by_key.get(api_key(request.headers) or "", config)
        if not config.enabled or REFUSAL in ctx:
            return request
        spec = config.spec_for(request.model)
        if spec is None:
            return request
        budget = self._budgets.get(spec)
        if budget is None:
            budget = self._budgets[spec] = FailureBudget(spec, self._rand)
        if not budget.should_fail():
            return request
        ctx[FAULT_INJECTED] = True
        kind = spec.choose(self._rand)
        if kind in HTTP_FAULTS:
            return ShortCircuit(error=fault_error(kind, provider=request.provider, retry_after_s=config.retry_after_s))
        ctx[FAULT] = kind
        return request


class TimerPlugin(BasePlugin):
    """The mock server's ``-tpm SECONDS``: 429 for every request from then on (for ``duration_s``, if given).

    ``clock`` gives the seconds since the cluster started. The coordinator logs
    the moment it triggers, once for the cluster.
    """

    name = "timer"

    def __init__(self, after_s: float, duration_s: float | None, clock: Callable[[], float]) -> None:
        self.after_s = after_s
        self.duration_s = duration_s
        self._clock = clock

    def active(self) -> bool:
        elapsed = self._clock()
        if elapsed < self.after_s:
            return False
        return self.duration_s is None or elapsed < self.after_s + self.duration_s

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if not self.active():
            return request
        anthropic = request.provider == "anthropic"
        return ShortCircuit(
            error=PluginError(
                429,
                TIMER_MESSAGE,
                type="rate_limit_error" if anthropic else "server_error",
                code=None if anthropic else "internal_server_error",
            )
        )


def stream_error_event(*, provider: str, endpoint: str) -> bytes:
    """The error event a provider sends when a stream fails after it began, as each SDK reads it."""
    error: dict[str, Any]
    if provider == "anthropic":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    if endpoint == "/responses":
        error = {"type": "error", "code": "server_error", "message": SERVER_ERROR, "param": None}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    error = {"error": {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": "internal_server_error"}}
    return b"data: " + orjson.dumps(error) + b"\n\n"
