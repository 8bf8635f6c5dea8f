"""The built-in ``limits`` plugin: cluster-wide RPM, TPM and concurrency limits from leased tokens.

Theory of operation (the arithmetic is :mod:`sim.ratelimit`'s). The pre-hook
works out which buckets a request draws from (the cluster's, its model's, its
API key's) and what it needs from each: one request, its token reservation
(the prompt estimated from the body's size, four bytes a token, plus the
requested maximum output, as the providers reserve), one concurrency slot. If
the worker's stock covers it, the request is admitted at once, with no round
trip. If what the worker last heard says a bucket cannot cover it yet, it is
refused at once. Otherwise the hook suspends with a :class:`LeaseNeed`: the
worker asks the coordinator and resumes the hook with the answer, or with None
when the coordinator could not be reached, in which case (fail-open) a local
bucket with this worker's fair share of each limit decides.

A refusal is OpenAI's 429 ``rate_limit_exceeded`` (or Anthropic's
``rate_limit_error``) with ``retry-after`` and ``retry-after-ms``; a full
concurrency limit is 503 (OpenAI) or 529 ``overloaded_error`` (Anthropic). The
post-hook settles the token reservation against the answer's real usage,
gives the surplus back, adds the ``x-ratelimit-*`` (or ``anthropic-ratelimit-*``)
headers to every answer under a limit, and leaves the concurrency slot's
release for after the delivery (:data:`sim.pipeline.AFTER_DELIVERY`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sim.pipeline import (
    AFTER_DELIVERY,
    REFUSAL,
    BasePlugin,
    Context,
    PluginError,
    PluginRequest,
    PluginResponse,
    ShortCircuit,
    Suspend,
)
from sim.ratelimit import (
    Ask,
    Buckets,
    Granted,
    LeaseAnswer,
    LeasePool,
    LimitsConfig,
    Scope,
    anthropic_headers,
    anthropic_limit_message,
    asks_for,
    openai_headers,
    openai_limit_message,
    retry_after_headers,
)
from sim.rules_plugin import SIZE_BYTES

#: Context key: set when the limits refused this request (counted as ``rate_limited``).
RATE_LIMITED = "limits.refused"
#: Context key: set when a lease could not reach the coordinator and a local share decided.
WITHOUT_COORDINATOR = "limits.without_coordinator"
_ADMISSION = "limits.admission"
_UNDER = "limits.under"  # (request, scopes) of a request under some limit, for the post-hook's headers
BYTES_PER_TOKEN = 4
# A lease that another request of this worker used up meanwhile is asked again this often.
MAX_ROUNDS = 3
MEMO_LIMIT = 4096  # (model, key) pairs remembered; clients choose them
# Endpoints that draw on the limits; listings and token counting do not.
LIMITED_ENDPOINTS = frozenset(
    {"/chat/completions", "/completions", "/responses", "/embeddings", "/images/generations", "/messages"}
)
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class LeaseNeed:
    """What a suspended pre-hook needs the worker to lease from the coordinator."""

    asks: tuple[Ask, ...]


@dataclass(slots=True)
class _Admission:
    asks: tuple[Ask, ...]
    tokens: int
    local: bool  # decided by the fail-open local share (nothing to give back to the coordinator)


def api_key(headers: Mapping[str, str]) -> str | None:
    """The client's API key: ``Authorization: Bearer KEY`` or Anthropic's ``x-api-key``."""
    authorization = headers.get("authorization")
    if authorization is not None and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("x-api-key")


def token_reservation(body: Mapping[str, Any], size_bytes: int) -> int:
    """The tokens a request reserves: its prompt estimated from its size, plus its maximum output."""
    prompt = math.ceil(size_bytes / BYTES_PER_TOKEN)
    for name in _OUTPUT_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return prompt + value
    return prompt


def _longest_wait(refused: Sequence[Granted]) -> float | None:
    """How long until every refusing bucket could cover its need; None if one never could."""
    waits = [part.retry_after_s for part in refused]
    if any(wait is None for wait in waits):
        return None
    return max((wait for wait in waits if wait is not None), default=0.0)


class LimitsPlugin(BasePlugin):
    name = "limits"

    def __init__(
        self,
        config: LimitsConfig,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        give_back: Callable[[list[tuple[str, float]]], None],
    ) -> None:
        self.config = config
        self.pool = LeasePool()
        self._clock = clock
        self._wall_clock = wall_clock
        self._give_back = give_back
        self._local = Buckets()  # the fail-open share, used only while the coordinator is away
        self.workers = 1  # live workers, as the coordinator last said
        self._scope_memo: dict[tuple[str, str | None], tuple[Scope, ...]] = {}
        self._ask_memo: dict[tuple[Scope, ...], tuple[Ask, ...]] = {}
        self._header_memo: dict[tuple[Scope, ...], tuple[tuple[str, str, int], ...]] = {}

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit | Suspend:
        if REFUSAL in ctx or request.method != "POST" or request.endpoint not in LIMITED_ENDPOINTS:
            return request
        scopes = self._scopes(request.model, api_key(request.headers))
        if not scopes:
            return request
        ctx[_UNDER] = (request, scopes)
        tokens = token_reservation(request.body, int(ctx.get(SIZE_BYTES, 0)))
        asks = self._asks(scopes, tokens)
        too_large = next((ask for ask in asks if ask.kind == "tokens" and ask.need > ask.capacity), None)
        if too_large is not None:
            return self._refuse(ctx, request, too_large, None, scopes)
        return self._admit(ctx, request, asks, tokens, scopes, rounds=0)

    def _scopes(self, model: str, key: str | None) -> tuple[Scope, ...]:
        """The scopes of (model, key), memoised: clients repeat them."""
        memo = self._scope_memo
        found = memo.get((model, key))
        if found is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            found = memo[(model, key)] = self.config.scopes(model, key)
        return found

    def _asks(self, scopes: tuple[Scope, ...], tokens: int) -> tuple[Ask, ...]:
        """The request's asks: the fixed ones (a request, a slot) reused, the token ones made for this need."""
        plan = self._ask_memo.get(scopes)
        if plan is None:
            if len(self._ask_memo) >= MEMO_LIMIT:
                self._ask_memo.clear()
            plan = self._ask_memo[scopes] = asks_for(scopes, tokens=0)
        if not any(ask.kind == "tokens" for ask in plan):
            return plan
        return tuple(
            Ask(ask.name, ask.kind, ask.capacity, float(tokens)) if ask.kind == "tokens" else ask for ask in plan
        )

    def _admit(
        self,
        ctx: Context,
        request: PluginRequest,
        asks: tuple[Ask, ...],
        tokens: int,
        scopes: Sequence[Scope],
        *,
        rounds: int,
    ) -> PluginRequest | ShortCircuit | Suspend:
        pool = self.pool
        if pool.take(asks):
            ctx[_ADMISSION] = _Admission(asks, tokens, local=False)
            return request
        now = self._clock()
        wait = pool.refused_locally(asks, now)
        if wait is not None or rounds >= MAX_ROUNDS:
            limiting = self._limiting(asks, now)
            return self._refuse(ctx, request, limiting, wait if wait is not None else 0.0, scopes)
        shortfall = pool.shortfall(asks)
        return Suspend(
            LeaseNeed(tuple(ask for ask in shortfall if ask.need > 0)),
            lambda answer: self._resume(ctx, request, asks, tokens, scopes, answer, rounds),
        )

    def _resume(
        self,
        ctx: Context,
        request: PluginRequest,
        asks: tuple[Ask, ...],
        tokens: int,
        scopes: Sequence[Scope],
        answer: object,
        rounds: int,
    ) -> PluginRequest | ShortCircuit | Suspend:
        now = self._clock()
        if not isinstance(answer, LeaseAnswer):
            return self._fail_open(ctx, request, asks, tokens, scopes, now)
        self.workers = max(1, answer.workers)
        need = LeaseNeed(tuple(ask for ask in self.pool.shortfall(asks) if ask.need > 0))
        self.pool.grant(need.asks, answer, now)
        if not answer.ok:
            refused = [part for part in answer.parts if part.granted == 0]
            wait = _longest_wait(refused)
            names = {part.name for part in refused if part.retry_after_s is None or part.retry_after_s == wait}
            limiting = next((ask for ask in asks if ask.name in names), asks[0])
            return self._refuse(ctx, request, limiting, wait, scopes)
        return self._admit(ctx, request, asks, tokens, scopes, rounds=rounds + 1)

    def _fail_open(
        self,
        ctx: Context,
        request: PluginRequest,
        asks: tuple[Ask, ...],
        tokens: int,
        scopes: Sequence[Scope],
        now: float,
    ) -> PluginRequest | ShortCircuit:
        """No coordinator: a local bucket with this worker's share of each limit decides."""
        ctx[WITHOUT_COORDINATOR] = True
        share = tuple(Ask(ask.name, ask.kind, max(1, ask.capacity // self.workers), ask.need) for ask in asks)
        answer = self._local.lease(share, now, workers=self.workers, stock=False)  # the need exactly
        if answer.ok:
            ctx[_ADMISSION] = _Admission(share, tokens, local=True)
            return request
        wait = _longest_wait([part for part in answer.parts if part.granted == 0])
        limiting = next(ask for ask, part in zip(share, answer.parts, strict=True) if part.granted == 0)
        return self._refuse(ctx, request, limiting, wait, scopes)

    def _limiting(self, asks: Sequence[Ask], now: float) -> Ask:
        """The bucket that stops a request: the one whose stock and level fall shortest."""
        pool = self.pool

        def room(ask: Ask) -> float:
            remaining = pool.remaining(ask.name, now)
            return (remaining if remaining is not None else float(ask.capacity)) - ask.need

        return min(asks, key=room)

    def _refuse(
        self, ctx: Context, request: PluginRequest, ask: Ask, wait_s: float | None, scopes: Sequence[Scope]
    ) -> ShortCircuit:
        ctx[RATE_LIMITED] = True
        anthropic = request.provider == "anthropic"
        if ask.kind == "concurrency":
            if anthropic:
                error = PluginError(529, "Overloaded", type="overloaded_error")
            else:
                message = "The server is overloaded or not ready yet: too many requests in flight."
                error = PluginError(503, message, type="server_error", code="concurrency_limit_exceeded")
            return ShortCircuit(error=error)
        headers = (*retry_after_headers(wait_s if wait_s is not None else 60.0), *self._headers(request, scopes))
        if anthropic:
            message = anthropic_limit_message(kind=ask.kind, limit=ask.capacity)
            return ShortCircuit(error=PluginError(429, message, type="rate_limit_error", headers=headers))
        remaining = self.pool.remaining(ask.name, self._clock())
        used = ask.capacity - int(remaining) if remaining is not None else ask.capacity
        message = openai_limit_message(
            model=request.model,
            kind=ask.kind,
            limit=ask.capacity,
            used=max(0, used),
            requested=int(ask.need),
            wait_s=wait_s,
        )
        error = PluginError(429, message, type=ask.kind, code="rate_limit_exceeded", headers=headers)
        return ShortCircuit(error=error)

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        admission: _Admission | None = ctx.get(_ADMISSION)
        if admission is not None:
            self._settle(ctx, admission, response if error is None else None)
        under: tuple[PluginRequest, Sequence[Scope]] | None = ctx.get(_UNDER)
        if under is None or response is None:
            return response, error  # a refusal carries its headers already
        headers = self._headers(*under)
        if headers:
            response = dataclasses.replace(response, headers=(*response.headers, *headers))
        return response, error

    def _settle(self, ctx: Context, admission: _Admission, response: PluginResponse | None) -> None:
        used = admission.tokens
        if response is None or response.status >= 400:
            used = 0  # a failed request costs its request, not its tokens
        elif response.usage is not None:
            used = sum(response.usage)
        returns: list[tuple[str, float]] = []
        for ask in admission.asks:
            if ask.kind == "tokens" and not admission.local:
                surplus = self.pool.settle(ask.name, ask.need, used)
                if surplus > 0:
                    returns.append((ask.name, surplus))
            elif ask.kind == "tokens":
                self._local.give_back([(ask.name, max(0.0, ask.need - used))], self._clock())
            elif ask.kind == "concurrency":
                after: list[Callable[[], None]] = ctx.setdefault(AFTER_DELIVERY, [])
                after.append(self._releaser(ask.name, admission.local))
        if returns:
            self._give_back(returns)

    def _releaser(self, name: str, local: bool) -> Callable[[], None]:
        if local:
            return lambda: self._local.give_back([(name, 1.0)], self._clock())
        return lambda: self._give_back([(name, 1.0)])

    def _headers(self, request: PluginRequest, scopes: Sequence[Scope]) -> tuple[tuple[bytes, bytes], ...]:
        """The rate-limit headers of the tightest requests bucket and the tightest tokens bucket."""
        key = tuple(scopes)
        buckets = self._header_memo.get(key)
        if buckets is None:
            if len(self._header_memo) >= MEMO_LIMIT:
                self._header_memo.clear()
            buckets = self._header_memo[key] = tuple(
                (kind, f"{kind}:{scope.label}", capacity)
                for scope in scopes
                for kind, capacity in scope.limit.capacities()
                if kind != "concurrency"
            )
        if not buckets:
            return ()
        now = self._clock()
        pool = self.pool
        states: dict[str, tuple[int, float, str]] = {}
        for kind, name, capacity in buckets:
            remaining = pool.remaining(name, now)
            if remaining is None:
                remaining = float(capacity)
            best = states.get(kind)
            if best is None or remaining / capacity < best[1] / best[0]:
                states[kind] = (capacity, remaining, name)
        chosen = {
            kind: (capacity, remaining, pool.full_in_s(name, now))
            for kind, (capacity, remaining, name) in states.items()
        }
        if request.provider == "anthropic":
            return anthropic_headers(chosen.get("requests"), chosen.get("tokens"), now_unix_s=self._wall_clock())
        return openai_headers(chosen.get("requests"), chosen.get("tokens"))
