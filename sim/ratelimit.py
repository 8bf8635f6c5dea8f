"""Rate limits: token buckets in the coordinator, leases of their tokens in the workers.

Theory of operation. A limit is a :class:`TokenBucket`: ``capacity`` tokens,
refilled continuously at ``capacity`` per minute (RPM and TPM, as the providers
count them), or not refilled at all for a concurrency limit, whose tokens come
back when a request ends. Every bucket lives in the coordinator
(:class:`Buckets`); a worker never admits a request with tokens it does not
hold. It holds a small stock per bucket (:class:`LeasePool`) and asks for more
when a request needs more than it holds: the coordinator grants the request's
need, all of it or nothing (several buckets at once, all or none of them), plus
a little extra stock so that the next requests need not ask. So the cluster
admits exactly what one bucket would admit, minus what workers hold unused:
the extra is at most ``LEASE_FRACTION`` of a bucket's capacity split between
the live workers, and none at low limits (the lease is then one token).

A refusal carries how long until the bucket could cover the need
(``retry-after``); the worker remembers the bucket's level and refuses locally
while it cannot have refilled, so overload does not turn into a round trip per
request. Tokens a request reserved but did not use (TPM reserves the prompt
estimate plus the requested maximum output, as the providers do) are settled
after the answer: the surplus stays in the worker's stock and what it holds
beyond its extra goes back to the coordinator.

Which buckets a request draws from: the cluster's (``--limit-rpm``,
``--limit-tpm``, ``--limit-concurrency``), its model's (``limits.models``, by
exact name or glob, or a tier preset), and its API key's (``keys[].limits``).
Each model and each key has buckets of its own, as the providers count per
model. Time is always passed in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from sim.errors import SectionError, config_section
from sim.model_table import ModelTable

KINDS: Final = ("requests", "tokens", "concurrency")
#: The most a worker holds beyond its current need, as a share of a bucket split between live workers.
LEASE_FRACTION: Final = 0.01
SECONDS_PER_MINUTE: Final = 60.0

# Published tier tables (OpenAI "usage tier" 1 and 2, Anthropic tiers 1 and 2), to the
# nearest round figure at the time of writing: requests and tokens per minute per model.
# Anthropic's separate input and output token limits fold into one tokens bucket (input's).
TIERS: Final[Mapping[str, Mapping[str, Mapping[str, int]]]] = {
    "tier-1": {
        "gpt-4o": {"rpm": 500, "tpm": 30_000},
        "gpt-4o-mini": {"rpm": 500, "tpm": 200_000},
        "gpt-4.1": {"rpm": 500, "tpm": 30_000},
        "gpt-4.1-mini": {"rpm": 500, "tpm": 200_000},
        "gpt-4.1-nano": {"rpm": 500, "tpm": 200_000},
        "gpt-5*": {"rpm": 500, "tpm": 500_000},
        "o3*": {"rpm": 500, "tpm": 30_000},
        "o4-mini": {"rpm": 1_000, "tpm": 100_000},
        "gpt-3.5-turbo*": {"rpm": 3_500, "tpm": 200_000},
        "text-embedding-*": {"rpm": 3_000, "tpm": 1_000_000},
        "claude-opus-*": {"rpm": 50, "tpm": 30_000},
        "claude-sonnet-*": {"rpm": 50, "tpm": 30_000},
        "claude-*haiku*": {"rpm": 50, "tpm": 50_000},
        "claude-*": {"rpm": 50, "tpm": 30_000},
    },
    "tier-2": {
        "gpt-4o": {"rpm": 5_000, "tpm": 450_000},
        "gpt-4o-mini": {"rpm": 5_000, "tpm": 2_000_000},
        "gpt-4.1": {"rpm": 5_000, "tpm": 450_000},
        "gpt-4.1-mini": {"rpm": 5_000, "tpm": 2_000_000},
        "gpt-4.1-nano": {"rpm": 5_000, "tpm": 2_000_000},
        "gpt-5*": {"rpm": 5_000, "tpm": 1_000_000},
        "o3*": {"rpm": 5_000, "tpm": 450_000},
        "o4-mini": {"rpm": 2_000, "tpm": 2_000_000},
        "gpt-3.5-turbo*": {"rpm": 3_500, "tpm": 2_000_000},
        "text-embedding-*": {"rpm": 5_000, "tpm": 1_000_000},
        "claude-opus-*": {"rpm": 1_000, "tpm": 450_000},
        "claude-sonnet-*": {"rpm": 1_000, "tpm": 450_000},
        "claude-*haiku*": {"rpm": 1_000, "tpm": 450_000},
        "claude-*": {"rpm": 1_000, "tpm": 450_000},
    },
}
LIMIT_FIELDS: Final = ("rpm", "tpm", "concurrency")


class LimitsConfigError(SectionError):
    """The ``limits`` section is invalid."""

    section = "limits"


# The bucket arithmetic


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate_per_s`` (0: only what is put back), as of ``at_s``."""

    capacity: float
    rate_per_s: float
    level: float
    at_s: float

    @classmethod
    def full(cls, capacity: float, rate_per_s: float, now_s: float) -> TokenBucket:
        return cls(capacity, rate_per_s, capacity, now_s)

    def refill(self, now_s: float) -> float:
        """The level now (and remember it)."""
        if now_s > self.at_s:
            self.level = min(self.capacity, self.level + (now_s - self.at_s) * self.rate_per_s)
            self.at_s = now_s
        return self.level

    def take(self, amount: float, now_s: float) -> bool:
        """Take ``amount`` if the bucket holds it; else take nothing."""
        if self.refill(now_s) < amount:
            return False
        self.level -= amount
        return True

    def put(self, amount: float, now_s: float) -> None:
        """Tokens handed back (a request's unused reservation, a finished request's slot)."""
        self.level = min(self.capacity, self.refill(now_s) + amount)

    def wait_s(self, amount: float, now_s: float) -> float | None:
        """Seconds until the bucket holds ``amount``; None if refilling never gets there."""
        missing = amount - self.refill(now_s)
        if missing <= 0:
            return 0.0
        if self.rate_per_s <= 0 or amount > self.capacity:
            return None
        return missing / self.rate_per_s

    def full_in_s(self, now_s: float) -> float:
        """Seconds until the bucket is full again (the providers' "reset")."""
        missing = self.capacity - self.refill(now_s)
        if missing <= 0 or self.rate_per_s <= 0:
            return 0.0
        return missing / self.rate_per_s


def rate_per_s(kind: str, capacity: float) -> float:
    """The refill rate of a limit: per-minute limits refill their capacity each minute."""
    return 0.0 if kind == "concurrency" else capacity / SECONDS_PER_MINUTE


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request needs from one bucket: its ``name``, what the bucket is, and how many tokens."""

    name: str  # "requests:cluster", "tokens:model:gpt-4o", "concurrency:key:sk-…"
    kind: str  # one of KINDS
    capacity: int
    need: float


@dataclass(frozen=True, slots=True)
class Granted:
    """One bucket's part of a coordinator's answer."""

    name: str
    granted: float  # 0 when refused
    level: float  # the bucket's level after the grant
    capacity: int
    retry_after_s: float | None  # on a refusal: until the bucket could cover the need (None: never)


@dataclass(frozen=True, slots=True)
class LeaseAnswer:
    ok: bool
    parts: tuple[Granted, ...]
    workers: int  # live workers, so a worker can size a fair local share when the coordinator is away


class Buckets:
    """The coordinator's buckets, made on first use from what the asks say they are."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, ask: Ask, now_s: float) -> TokenBucket:
        bucket = self._buckets.get(ask.name)
        if bucket is None or bucket.capacity != ask.capacity:
            # New, or its limit changed (a new config): start it full at the new size.
            bucket = TokenBucket.full(ask.capacity, rate_per_s(ask.kind, ask.capacity), now_s)
            self._buckets[ask.name] = bucket
        return bucket

    def lease(self, asks: Sequence[Ask], now_s: float, *, workers: int, stock: bool = True) -> LeaseAnswer:
        """Grant every ask's need plus some extra stock (none without ``stock``), or nothing at all
        if one bucket cannot cover its need."""
        buckets = [self.bucket(ask, now_s) for ask in asks]
        short = [(ask, bucket) for ask, bucket in zip(asks, buckets, strict=True) if bucket.refill(now_s) < ask.need]
        if short:
            parts = []
            for ask, bucket in zip(asks, buckets, strict=True):
                wait = bucket.wait_s(ask.need, now_s)
                parts.append(Granted(ask.name, 0.0, bucket.level, ask.capacity, wait))
            return LeaseAnswer(False, tuple(parts), workers)
        granted = []
        for ask, bucket in zip(asks, buckets, strict=True):
            extra = min(lease_extra(ask.kind, ask.capacity, workers), bucket.level - ask.need) if stock else 0.0
            amount = ask.need + max(0.0, math.floor(extra))
            bucket.level -= amount
            granted.append(Granted(ask.name, amount, bucket.level, ask.capacity, None))
        return LeaseAnswer(True, tuple(granted), workers)

    def give_back(self, returns: Iterable[tuple[str, float]], now_s: float) -> None:
        for name, amount in returns:
            bucket = self._buckets.get(name)
            if bucket is not None and amount > 0:
                bucket.put(amount, now_s)

    def levels(self, now_s: float) -> dict[str, float]:
        return {name: bucket.refill(now_s) for name, bucket in self._buckets.items()}


def lease_extra(kind: str, capacity: float, workers: int) -> float:
    """The stock a worker may hold beyond its need: none for concurrency, whose slots go back at once."""
    if kind == "concurrency":
        return 0.0
    return math.floor(capacity * LEASE_FRACTION / max(1, workers))


# The worker's side


@dataclass(slots=True)
class Known:
    """What a worker last heard of a bucket's level, to refuse locally and to fill the headers."""

    capacity: int
    rate_per_s: float
    level: float
    at_s: float

    def level_at(self, now_s: float) -> float:
        return min(self.capacity, self.level + max(0.0, now_s - self.at_s) * self.rate_per_s)


@dataclass(slots=True)
class LeasePool:
    """A worker's stock of tokens per bucket, and what it knows of the buckets themselves."""

    held: dict[str, float] = field(default_factory=dict)
    known: dict[str, Known] = field(default_factory=dict)
    keep: dict[str, float] = field(default_factory=dict)  # the extra stock each bucket allows us

    def take(self, asks: Sequence[Ask]) -> bool:
        """Take every ask's need from the stock, or nothing if one bucket's stock falls short."""
        held = self.held
        for ask in asks:
            if held.get(ask.name, 0.0) < ask.need:
                return False
        for ask in asks:
            held[ask.name] -= ask.need
        return True

    def shortfall(self, asks: Sequence[Ask]) -> tuple[Ask, ...]:
        """The asks with the need that the stock does not cover (what to lease)."""
        missing = []
        for ask in asks:
            short = ask.need - max(0.0, self.held.get(ask.name, 0.0))
            missing.append(Ask(ask.name, ask.kind, ask.capacity, max(0.0, short)))
        return tuple(missing)

    def refused_locally(self, asks: Sequence[Ask], now_s: float) -> float | None:
        """Seconds to wait if what we know says a bucket cannot cover its shortfall yet; else None (ask)."""
        longest: float | None = None
        for ask in asks:
            known = self.known.get(ask.name)
            if known is None or known.capacity != ask.capacity:
                continue
            missing = ask.need - max(0.0, self.held.get(ask.name, 0.0))
            if missing <= 0:
                continue
            level = known.level_at(now_s)
            if level < missing and known.rate_per_s > 0:
                wait = (missing - level) / known.rate_per_s
                longest = wait if longest is None else max(longest, wait)
        return longest

    def grant(self, asks: Sequence[Ask], answer: LeaseAnswer, now_s: float) -> None:
        """Take in the coordinator's answer: the tokens granted, and each bucket's level."""
        kinds = {ask.name: ask.kind for ask in asks}
        for part in answer.parts:
            kind = kinds.get(part.name, "requests")
            self.known[part.name] = Known(part.capacity, rate_per_s(kind, part.capacity), part.level, now_s)
            self.keep[part.name] = lease_extra(kind, part.capacity, answer.workers)
            if part.granted:
                self.held[part.name] = self.held.get(part.name, 0.0) + part.granted

    def put(self, name: str, amount: float) -> float:
        """Tokens back into the stock; returns what exceeds the allowed stock (to give back)."""
        held = self.held.get(name, 0.0) + amount
        surplus = max(0.0, held - self.keep.get(name, 0.0))
        self.held[name] = held - surplus
        known = self.known.get(name)
        if surplus and known is not None:
            known.level += surplus  # it goes back to the bucket
        return surplus

    def settle(self, name: str, reserved: float, used: float) -> float:
        """A request used ``used`` of the ``reserved`` tokens; returns the surplus to give back.

        Using more than reserved leaves a debt in the stock (negative), which the
        next lease for this bucket pays first.
        """
        if used > reserved:
            self.held[name] = self.held.get(name, 0.0) - (used - reserved)
            return 0.0
        return self.put(name, reserved - used)

    def remaining(self, name: str, now_s: float) -> float | None:
        """The bucket's remaining tokens as this worker sees them (for the headers), or None if unknown."""
        known = self.known.get(name)
        if known is None:
            return None
        return max(0.0, known.level_at(now_s) + self.held.get(name, 0.0))

    def full_in_s(self, name: str, now_s: float) -> float:
        known = self.known.get(name)
        if known is None or known.rate_per_s <= 0:
            return 0.0
        remaining = self.remaining(name, now_s) or 0.0
        return max(0.0, (known.capacity - remaining) / known.rate_per_s)


# Configuration


@dataclass(frozen=True, slots=True)
class Limit:
    """Requests per minute, tokens per minute and requests in flight; None for no limit."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    def capacities(self) -> tuple[tuple[str, int], ...]:
        pairs = (("requests", self.rpm), ("tokens", self.tpm), ("concurrency", self.concurrency))
        return tuple((kind, value) for kind, value in pairs if value is not None)


@dataclass(frozen=True, slots=True)
class Scope:
    """One set of buckets a request draws from: the cluster's, a model's or a key's."""

    label: str  # "cluster", "model:gpt-4o", "key:sk-…"
    limit: Limit


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    cluster: Limit = field(default_factory=Limit)
    models: ModelTable[Limit] = field(default_factory=lambda: ModelTable(()))
    keys: Mapping[str, Limit] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.cluster) or bool(self.keys) or self.models.has_entries

    def scopes(self, model: str, key: str | None) -> tuple[Scope, ...]:
        """The limits a request for ``model`` with API ``key`` is under, most specific last."""
        scopes = []
        if self.cluster:
            scopes.append(Scope("cluster", self.cluster))
        by_model = self.models.get(model) if model else None
        if by_model:
            scopes.append(Scope(f"model:{model}", by_model))
        by_key = self.keys.get(key) if key is not None else None
        if by_key:
            scopes.append(Scope(f"key:{key}", by_key))
        return tuple(scopes)


def asks_for(scopes: Sequence[Scope], *, tokens: int) -> tuple[Ask, ...]:
    """Every bucket of ``scopes`` with this request's need: one request, ``tokens`` tokens, one slot."""
    asks = []
    for scope in scopes:
        for kind, capacity in scope.limit.capacities():
            need = float(tokens) if kind == "tokens" else 1.0
            asks.append(Ask(f"{kind}:{scope.label}", kind, capacity, need))
    return tuple(asks)


def load_limit(raw: object, path: str, errors: list[str]) -> Limit:
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: must be a mapping of rpm, tpm, concurrency")
        return Limit()
    errors += [f"{path}.{key}: unknown field" for key in raw if key not in LIMIT_FIELDS]
    values = {name: _count(raw.get(name), f"{path}.{name}", errors) for name in LIMIT_FIELDS}
    return Limit(**values)


def _count(value: object, path: str, errors: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(f"{path}: must be a whole number >= 1")
        return None
    return value


def load_limits(
    raw: object,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    keys: Mapping[str, Limit] | None = None,
    where: str = "limits",
) -> LimitsConfig:
    """The ``limits:`` section (``rpm``, ``tpm``, ``concurrency``, ``tier``, ``models``) and the flags.

    A flag given (``--limit-rpm`` …) wins over the section's cluster-wide value.
    Every problem is reported at once, each with its path.
    """
    errors: list[str] = []
    section = config_section(raw, where, {*LIMIT_FIELDS, "tier", "models"}, errors)
    cluster = load_limit({name: section[name] for name in LIMIT_FIELDS if name in section}, where, errors)
    cluster = Limit(
        rpm if rpm is not None else cluster.rpm,
        tpm if tpm is not None else cluster.tpm,
        concurrency if concurrency is not None else cluster.concurrency,
    )
    entries: list[tuple[str, Limit]] = []
    raw_models = section.get("models", {})
    if not isinstance(raw_models, Mapping):
        errors.append(f"{where}.models: must map model names (or globs) to limits")
        raw_models = {}
    for name, entry in raw_models.items():
        entries.append((str(name), load_limit(entry, f"{where}.models.{name}", errors)))
    tier = section.get("tier")
    if tier is not None:
        if tier not in TIERS:
            errors.append(f"{where}.tier: must be one of {', '.join(TIERS)}")
        else:
            # The models named in the section come first, so they win over the tier's.
            entries += [(name, Limit(**values)) for name, values in TIERS[tier].items()]
    if errors:
        raise LimitsConfigError(errors)
    return LimitsConfig(cluster, ModelTable(entries), dict(keys or {}))


# What the client sees


def format_reset(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` form: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{math.ceil(rest * 1000) / 1000:g}s"


def format_wait(seconds: float) -> str:
    """The wait in OpenAI's 429 message: ``20ms``, ``1.694s``."""
    return format_reset(seconds)


def retry_after_headers(seconds: float) -> tuple[tuple[bytes, bytes], ...]:
    """``retry-after`` (whole seconds, rounded up, at least 1) and ``retry-after-ms``."""
    ms = max(1, math.ceil(seconds * 1000))
    return (
        (b"retry-after", str(max(1, math.ceil(seconds))).encode()),
        (b"retry-after-ms", str(ms).encode()),
    )


_UNITS = {"requests": ("requests per min (RPM)", "requests"), "tokens": ("tokens per min (TPM)", "tokens")}
ORGANIZATION = "org-understudy"
OPENAI_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
ANTHROPIC_LIMITS_URL = "https://docs.claude.com/en/api/rate-limits"


def openai_limit_message(*, model: str, kind: str, limit: int, used: int, requested: int, wait_s: float | None) -> str:
    """OpenAI's 429 wording (as its clients quote it)."""
    unit = _UNITS.get(kind, _UNITS["requests"])[0]
    subject = f"for {model} in organization {ORGANIZATION}" if model else f"for organization {ORGANIZATION}"
    if wait_s is None:
        return (
            f"Request too large {subject} on {unit}: Limit {limit}, Requested {requested}. "
            f"The input or output tokens must be reduced in order to run successfully. "
            f"Visit {OPENAI_LIMITS_URL} to learn more."
        )
    return (
        f"Rate limit reached {subject} on {unit}: Limit {limit}, Used {used}, Requested {requested}. "
        f"Please try again in {format_wait(wait_s)}. Visit {OPENAI_LIMITS_URL} to learn more."
    )


def anthropic_limit_message(*, kind: str, limit: int) -> str:
    """Anthropic's 429 wording (as its clients quote it)."""
    unit = "input tokens" if kind == "tokens" else "requests"
    return (
        f"This request would exceed the rate limit for your organization ({ORGANIZATION}) of {limit:,} {unit} "
        f"per minute. For details, refer to: {ANTHROPIC_LIMITS_URL}. You can see the response headers for "
        "current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. "
        "You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a "
        "rate limit increase."
    )


def openai_headers(
    requests: tuple[int, float, float] | None, tokens: tuple[int, float, float] | None
) -> tuple[tuple[bytes, bytes], ...]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` from (limit, remaining, seconds to full)."""
    headers: list[tuple[bytes, bytes]] = []
    for suffix, state in ((b"requests", requests), (b"tokens", tokens)):
        if state is not None:
            limit, remaining, reset_s = state
            headers += [
                (b"x-ratelimit-limit-" + suffix, str(limit).encode()),
                (b"x-ratelimit-remaining-" + suffix, str(int(remaining)).encode()),
                (b"x-ratelimit-reset-" + suffix, format_reset(reset_s).encode()),
            ]
    return tuple(headers)


def anthropic_headers(
    requests: tuple[int, float, float] | None, tokens: tuple[int, float, float] | None, *, now_unix_s: float
) -> tuple[tuple[bytes, bytes], ...]:
    """``anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}`` (reset as RFC 3339)."""
    headers: list[tuple[bytes, bytes]] = []
    groups: tuple[tuple[bytes, tuple[int, float, float] | None], ...] = (
        (b"requests", requests),
        (b"tokens", tokens),
        (b"input-tokens", tokens),
    )
    for group, state in groups:
        if state is not None:
            limit, remaining, reset_s = state
            headers += [
                (b"anthropic-ratelimit-" + group + b"-limit", str(limit).encode()),
                (b"anthropic-ratelimit-" + group + b"-remaining", str(int(remaining)).encode()),
                (b"anthropic-ratelimit-" + group + b"-reset", rfc3339(now_unix_s + reset_s).encode()),
            ]
    return tuple(headers)


def rfc3339(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(unix_s)))
