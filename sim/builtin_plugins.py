"""understudy's own behaviours as pipeline plugins: ``stats`` and ``auth``.

Every API request runs the same pipeline (DESIGN.md, "Request pipeline"):

    stats → auth → keys → coordinator → timer → limits → faults → the user's plugins → rules → provider step

``stats`` comes first so that its post-hook runs last and counts the answer the
client gets, whatever the later plugins did to it. ``auth`` comes next, so a
request without the right key is refused before any user plugin or rule sees
it; so are requests without one of the listed API keys (:mod:`sim.keys`).
``coordinator`` applies the ``--coordinator-down`` policy while the coordinator
is unreachable. ``rules`` (:mod:`sim.rules_plugin`) is last: its decision tells
the provider step what to do. The timer and faults live in :mod:`sim.faults`,
the rate limits in :mod:`sim.limits_plugin`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from sim.faults import FAULT_INJECTED
from sim.limits_plugin import RATE_LIMITED, WITHOUT_COORDINATOR
from sim.mocker_rules import Decision
from sim.pipeline import BasePlugin, Context, PluginError, PluginRequest, PluginResponse, ShortCircuit
from sim.pricing import PricingTable, format_cost
from sim.rules_plugin import DECISION
from sim.stats import RequestCounters

#: Context key: set by the provider step when a real upstream (or a cassette) answered.
UPSTREAM = "provider.upstream"
MODEL = "stats.model"
#: Context key: the answer's cost in USD, when its tokens and price are known.
COST = "stats.cost_usd"
#: Context key: the request's headers as received (lower-case names), for the access log.
HEADERS = "request.headers"


class StatsPlugin(BasePlugin):
    """Counts every answer into the worker's :class:`RequestCounters` (the ``/admin/stats`` figures),
    and prices it: ``x-understudy-cost-usd`` on each answer whose tokens are known, cost per model."""

    name = "stats"

    def __init__(self, counters: RequestCounters, pricing: PricingTable | None = None) -> None:
        self.counters = counters
        self.pricing = pricing

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        ctx[MODEL] = request.model  # as asked, before any plugin changes it
        return request

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        status = error.status if error is not None else response.status if response is not None else 500
        decision: Decision | None = ctx.get(DECISION)
        counters = self.counters
        counters.count_response(
            status=status, mocked=not ctx.get(UPSTREAM, False), rule=None if decision is None else decision.rule
        )
        if FAULT_INJECTED in ctx:
            counters.faults_injected += 1
        if RATE_LIMITED in ctx:
            counters.rate_limited += 1
        if WITHOUT_COORDINATOR in ctx:
            counters.served_without_coordinator += 1
        if response is not None and response.usage is not None and self.pricing is not None and status < 400:
            model = ctx.get(MODEL, "")
            cost = self.pricing.cost_usd(model, *response.usage)
            if cost is not None:
                ctx[COST] = cost
                counters.cost_usd[model] = counters.cost_usd.get(model, 0.0) + cost
                cost_header = (b"x-understudy-cost-usd", format_cost(cost).encode())
                response = dataclasses.replace(response, headers=(*response.headers, cost_header))
        # Every other plugin's post-hook has run by now: their failures are all known.
        self.counters.plugin_failures += len(ctx.failures)
        return response, error


MISSING = "Forbidden: Missing authentication header 'Authorization'"
INVALID = "Forbidden: Invalid authentication header 'Authorization'"


class AuthPlugin(BasePlugin):
    """The Bifrost mock server's ``-auth VALUE``: the ``Authorization`` header must be exactly VALUE.

    Anything else is a 403 in the provider's shape, with the mock server's words.
    Anthropic clients send their key in ``x-api-key``: it counts as
    ``Authorization: Bearer KEY``, so one value serves both SDKs.
    """

    name = "auth"

    def __init__(self, required: str) -> None:
        self.required = required

    def accepts(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("authorization")
        if given is not None and given == self.required:
            return True
        key = headers.get("x-api-key")
        return key is not None and f"Bearer {key}" == self.required

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if self.accepts(request.headers):
            return request
        missing = "authorization" not in request.headers and "x-api-key" not in request.headers
        return ShortCircuit(error=PluginError(403, MISSING if missing else INVALID, type="permission_error"))


class CoordinatorGate(BasePlugin):
    """``--coordinator-down``: while the coordinator is unreachable, fail-open serves on the
    worker's local state and counts the request (``served_without_coordinator``);
    fail-closed answers 503 in the provider's shape."""

    name = "coordinator"

    def __init__(self, connected: Callable[[], bool], *, fail_closed: bool) -> None:
        self.connected = connected
        self.fail_closed = fail_closed

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if self.connected():
            return request
        if not self.fail_closed:
            ctx[WITHOUT_COORDINATOR] = True
            return request
        anthropic = request.provider == "anthropic"
        message = "The service is temporarily unavailable: its coordinator cannot be reached."
        return ShortCircuit(error=PluginError(503, message, type="api_error" if anthropic else "server_error"))
