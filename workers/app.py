"""understudy's raw ASGI application, served by Hypercorn in each worker process.

The app reads the request, asks the pure core what to answer, and writes the
bytes. It never raises to the server: bad input gets the provider's error shape,
an unexpected failure a logged 500 in that shape too.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from sim import (
    anthropic_message,
    anthropic_request,
    anthropic_wire,
    chat,
    chat_request,
    completions,
    embeddings,
    images,
    openai_wire,
    responses,
)
from sim.access_log import access_record, go_log_prefix, raw_request, raw_response
from sim.builtin_plugins import COST, HEADERS, MODEL, UPSTREAM, AuthPlugin, CoordinatorGate, StatsPlugin
from sim.delivery import IMMEDIATE, Delivery, count_token_events, stream_offsets
from sim.errors import ApiError
from sim.faults import (
    FAULT,
    FAULT_INJECTED,
    FaultsConfig,
    FaultsPlugin,
    TimerPlugin,
    fault_error,
    stream_error_event,
)
from sim.keys import KeysConfig, KeysPlugin
from sim.latency import LatencyConfig, LatencyProfile
from sim.limits_plugin import RATE_LIMITED, LeaseNeed, LimitsPlugin, api_key
from sim.metrics import render as render_metrics
from sim.mocker import Mocker, MockerConfigError, load_mocker
from sim.mocker_rules import GENERATE, PASSTHROUGH, Decision
from sim.pipeline import (
    AFTER_DELIVERY,
    REFUSAL,
    Context,
    PipelineStats,
    Plugin,
    PluginError,
    PluginRequest,
    resume_pre,
    run_post,
    run_pre,
)
from sim.pricing import PricingTable
from sim.ratelimit import LimitsConfig
from sim.replies import ContentPolicy, ReplyWriter, request_random
from sim.rules_plugin import (
    DECISION,
    SIZE_BYTES,
    RulesPlugin,
    apply_overrides,
    apply_stream_overrides,
    has_overrides,
)
from sim.stats import RequestCounters
from workers.admin import Admin, StatsSource
from workers.http import (
    PNG,
    SSE,
    MethodNotAllowed,
    Receive,
    Reply,
    Scope,
    Send,
    api_path,
    base_url,
    has_header,
    json_body,
    lifespan,
    read_body,
    respond,
)
from workers.upstream import Passthrough

log = logging.getLogger("understudy.worker.app")
access_log = logging.getLogger("understudy.access")
raw_log = logging.getLogger("understudy.raw")

HEALTHY = b'{"status":"healthy"}'
STATS_TIMEOUT_S = 2.0
# How long a lease may wait for the coordinator before the worker decides alone (fail-open).
LEASE_TIMEOUT_S = 0.5
# Distinct model names a worker labels its metrics with; later ones count as "other".
METRIC_MODELS = 256


# Every endpoint: (scope, the decoded JSON body or None, the writer of reply texts) -> reply.
Handler = Callable[[Scope, Any, ReplyWriter], Reply]


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider's face: its error shape, request-id header and routes."""

    name: str
    display_name: str
    error_body: Callable[[ApiError, str], bytes]  # (error, request id) -> body
    request_id_header: bytes
    routes: Mapping[str, Mapping[str, Handler]]  # route -> method -> handler
    prefixed_routes: Mapping[str, Mapping[str, Callable[[Scope, str], Reply]]]  # route prefix -> method -> handler


class App:
    def __init__(
        self,
        *,
        worker_id: str,
        models: Iterable[str],
        writer: ReplyWriter,
        counters: RequestCounters,
        link: StatsSource,
        max_body_bytes: int,
        big_payload: bool = False,
        admin_token: str | None = None,
        auth: str | None = None,
        faults: FaultsConfig | None = None,
        timer: tuple[float, float | None] | None = None,
        cluster_clock: Callable[[], float] | None = None,
        latency: LatencyConfig | None = None,
        fallback_latency: LatencyProfile | None = None,
        pricing: PricingTable | None = None,
        limits: LimitsConfig | None = None,
        keys: KeysConfig | None = None,
        coordinator_down: str = "fail-open",
        access_log: bool = False,
        log_raw: bool = False,
        mocker: Mocker | None = None,
        plugins: Sequence[Plugin] = (),
        passthrough: Passthrough | None = None,
        seed: int | str | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.models = tuple(models)
        self._writer = writer
        self._generator = writer.generator
        self._link = link
        self._max_body_bytes = max_body_bytes
        self._big_payload = big_payload
        self._random = random.Random(seed)
        self._worker_header = (b"x-understudy-worker", worker_id.encode())
        self._admin = Admin(link, token=admin_token, max_body_bytes=max_body_bytes)
        # Stats first (its post-hook sees the final answer), then auth and the API keys, the
        # coordinator's reachability, the timer, the rate limits, the faults, the users'
        # plugins, and the rules, which decide what the provider step does.
        self._stats = StatsPlugin(counters, pricing)
        self._rules = RulesPlugin(mocker or load_mocker(None), random.Random(seed))
        keys = keys or KeysConfig()
        self._faults = FaultsPlugin(faults or FaultsConfig(), random.Random(seed), by_key=keys.faults())
        self._latency = latency or LatencyConfig()
        self._key_latency = keys.latency()
        self._fallback_latency = fallback_latency
        self._access_log = access_log
        self._log_raw = log_raw
        self._metric_models: set[str] = set()
        builtins: list[Plugin] = [self._stats]
        if auth is not None:
            builtins.append(AuthPlugin(auth))
        if keys.enabled:
            builtins.append(KeysPlugin(keys))
        builtins.append(CoordinatorGate(lambda: link.connected, fail_closed=coordinator_down == "fail-closed"))
        if timer is not None:
            builtins.append(TimerPlugin(timer[0], timer[1], cluster_clock or _process_clock()))
        limits = limits or LimitsConfig()
        if limits.enabled or keys.limits():
            limits = LimitsConfig(limits.cluster, limits.models, {**limits.keys, **keys.limits()})
            builtins.append(
                LimitsPlugin(limits, clock=trio.current_time, wall_clock=time.time, give_back=link.give_back)
            )
        if self._faults.enabled:
            builtins.append(self._faults)
        self._plugins: tuple[Plugin, ...] = (*builtins, *plugins, self._rules)
        self.plugin_stats = PipelineStats()
        self._passthrough = passthrough
        self._openai = Provider(
            "openai",
            "OpenAI",
            lambda error, request_id: openai_wire.error_body(error),
            b"x-request-id",
            {
                "/chat/completions": {"POST": self._chat_completions},
                "/completions": {"POST": self._completions},
                "/responses": {"POST": self._responses},
                "/embeddings": {"POST": self._embeddings},
                "/images/generations": {"POST": self._images},
                "/models": {"GET": self._list_models},
            },
            {"/models/": {"GET": self._retrieve_model}},
        )
        self._anthropic = Provider(
            "anthropic",
            "Anthropic",
            # Anthropic's error bodies carry the request id too.
            lambda error, request_id: anthropic_wire.error_body(error, request_id=request_id),
            b"request-id",
            {
                "/messages": {"POST": self._messages},
                "/messages/count_tokens": {"POST": self._count_tokens},
                "/models": {"GET": self._anthropic_models},
            },
            {"/models/": {"GET": self._anthropic_model}},
        )

    def set_config(self, version: int, config: Mapping[str, Any]) -> None:
        """Switch to a new config document; each request sees one version whole."""
        models = config.get("models")
        if isinstance(models, list) and models:
            self.models = tuple(str(model) for model in models)
        try:
            # One assignment: a request reads the old rules or the new ones, never a mix.
            self._rules.mocker = load_mocker(config.get("mocker"))
        except MockerConfigError as error:  # the coordinator checked it; a newer build may differ
            log.error("rules version %s refused, keeping the previous ones: %s", version, "; ".join(error.errors))
            return
        log.info("rules version %s in effect", version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = f"req_{self._random.getrandbits(128):032x}".encode()
        method = scope["method"]
        path = scope["path"]
        own = ((b"x-request-id", request_id), self._worker_header)
        if path == "/health" or path == "/livez":
            await respond(send, Reply(200, HEALTHY), own)
            return
        if path == "/readyz":
            reply = Reply(200, b'{"status":"ready"}') if self._link.connected else _not_ready()
            await respond(send, reply, own)
            return
        if path.startswith("/admin/"):
            await respond(send, await self._admin.handle(scope, receive, method, path), own)
            return
        if path.startswith(images.IMAGE_PATH_PREFIX) and method == "GET":
            png = images.png_for_path(path)
            missing = ApiError(404, "No such image.")
            reply = Reply(200, png, PNG) if png else _error_reply(self._openai, missing, request_id)
            await respond(send, reply, own)
            return
        if path == "/metrics":
            await respond(send, await self._metrics(), own)
            return
        provider, route = self._route(scope, path)
        started = trio.current_time()
        delivery = IMMEDIATE
        ctx: Context | None = None
        try:
            reply, delivery, ctx = await self._api(provider, scope, receive, method, path, route, request_id)
        except Exception:  # the app's outermost boundary: log it, answer 500, keep serving
            log.exception("request %s %s failed", method, path)
            error = ApiError(500, "The server had an error while processing your request.", error_type="server_error")
            reply = _error_reply(provider, error, request_id)
            self._stats.counters.count_response(status=500, mocked=True)
        ours: tuple[tuple[bytes, bytes], ...] = (self._worker_header,)
        if not any(name == provider.request_id_header for name, _ in reply.headers):  # an upstream's wins
            ours = ((provider.request_id_header, request_id), self._worker_header)
        timed = _TimedSend(send) if reply.events is not None else None
        try:
            await respond(send if timed is None else timed, reply, ours, delivery)
        finally:
            if ctx is not None:
                for done in ctx.get(AFTER_DELIVERY, ()):
                    done()
        if ctx is not None:
            self._observe(provider, route, scope, ctx, reply, started, timed)

    def _observe(
        self,
        provider: Provider,
        route: str | None,
        scope: Scope,
        ctx: Context,
        reply: Reply,
        started: float,
        timed: _TimedSend | None,
    ) -> None:
        """The finished request into the /metrics series, the access log and the raw log."""
        latency_s = trio.current_time() - started
        times = timed.times if timed is not None else []
        ttft_s = times[0] - started if times else None
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        prompt_tokens, completion_tokens = reply.usage if reply.usage is not None else (None, None)
        model: str = ctx.get(MODEL, "")
        cost: float | None = ctx.get(COST)
        rate_limited = RATE_LIMITED in ctx
        metric_model = model
        if model not in self._metric_models:
            if len(self._metric_models) < METRIC_MODELS:
                self._metric_models.add(model)
            else:
                metric_model = "other"
        self._stats.counters.metrics.observe_request(
            provider=provider.name,
            route=_route_label(provider, route),
            status=reply.status,
            model=metric_model,
            tokens_in=prompt_tokens or 0,
            tokens_out=completion_tokens or 0,
            latency_s=latency_s,
            ttft_s=ttft_s,
            itl_s=gaps,
            cost_usd=cost,
            rate_limited=rate_limited,
            fault=FAULT_INJECTED in ctx,
        )
        if self._access_log:
            headers = ctx.get(HEADERS, {})
            client = scope.get("client")
            decision: Decision | None = ctx.get(DECISION)
            line = access_record(
                request_id=ctx.request_id,
                worker=self.worker_id,
                method=scope["method"],
                path=scope["path"],
                provider=provider.name,
                model=model,
                status=reply.status,
                stream=reply.events is not None,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_s * 1000,
                ttft_ms=None if ttft_s is None else ttft_s * 1000,
                retry_count=headers.get("x-stainless-retry-count"),
                client=f"{client[0]}:{client[1]}" if client else None,
                rate_limited=rate_limited,
                fault=ctx.get(FAULT) or ("http" if FAULT_INJECTED in ctx else None),
                rule=None if decision is None else decision.rule,
                cost_usd=cost,
                at=time.time(),
            )
            access_log.info(line.decode())
        if self._log_raw:
            events = reply.events
            body = reply.body if events is None else b"".join(events) if isinstance(events, Sequence) else b""
            raw_log.info(raw_response(reply.status, reply.headers, body, prefix=go_log_prefix(time.time())).rstrip())

    async def _metrics(self) -> Reply:
        """``GET /metrics``: the cluster's series from the coordinator (this worker's alone if it is away)."""
        answer = await self._link.query_metrics(timeout_s=STATS_TIMEOUT_S)
        if answer is not None and isinstance(answer.get("series"), dict):
            series, alive = answer["series"], answer.get("workers_alive", 0)
            body, content_type = render_metrics(series, extra_gauges={"understudy_workers_alive": float(alive)})
        else:
            body, content_type = render_metrics(self._stats.counters.metrics.snapshot())
        return Reply(200, body, content_type.encode())

    def _route(self, scope: Scope, path: str) -> tuple[Provider, str | None]:
        """Which provider's API a path belongs to, and the route within it.

        ``/anthropic/v1/…`` and ``/v1/messages…`` are Anthropic's; so is any
        ``/v1/…`` path (``/v1/models`` above all, which both providers have) asked
        with an ``anthropic-version`` header, as every Anthropic client sends one.
        Everything else is OpenAI's.
        """
        if path.startswith("/anthropic/"):
            return self._anthropic, api_path(path, ANTHROPIC_PREFIXES)
        if path.startswith("/v1/messages") or (path.startswith("/v1/") and has_header(scope, b"anthropic-version")):
            return self._anthropic, api_path(path, ANTHROPIC_PREFIXES)
        return self._openai, api_path(path, OPENAI_PREFIXES)

    async def _api(
        self,
        provider: Provider,
        scope: Scope,
        receive: Receive,
        method: str,
        path: str,
        route: str | None,
        request_id: bytes,
    ) -> tuple[Reply, Delivery, Context]:
        """The answer to an API request, how to deliver it, and the request's context.

        Every request runs the pipeline, refused ones too.

        A refusal found here (unknown route, wrong method, a body too large or not
        JSON) goes into the context for the provider step to answer with, so auth
        still comes first and the stats still count it; the rules leave it alone.
        """
        handler: Handler | None = None
        body: Any = None
        model = ""
        size = 0
        refusal: ApiError | None = None
        try:
            handler, model = self._target(provider, method, path, route)
            if method == "POST":
                raw = await read_body(scope, receive, self._max_body_bytes)
                size = len(raw)
                if self._log_raw:
                    self._log_raw_request(scope, raw)
                body = json_body(raw, provider=provider.display_name)
                if not isinstance(body, dict):
                    handler(scope, body, self._writer)  # every endpoint refuses it, in its own words
                    raise ApiError(400, "The request body must be a JSON object.")
                if isinstance(body.get("model"), str):
                    model = body["model"]
        except ApiError as refused:
            refusal = refused
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        fields = body if isinstance(body, dict) else {}
        request = PluginRequest(provider.name, route or path, model, fields, headers, method)
        ctx = Context(request_id=request_id.decode(), worker_id=self.worker_id, provider=provider.name)
        ctx[SIZE_BYTES] = size
        ctx[HEADERS] = headers
        if refusal is not None:
            ctx[REFUSAL] = refusal
        pre = run_pre(self._plugins, ctx, request, stats=self.plugin_stats)
        while pre.suspended is not None:  # a plugin needs the coordinator first (a lease)
            outcome = await self._resolve(pre.suspended.need)
            pre = resume_pre(self._plugins, ctx, pre, outcome, stats=self.plugin_stats)
        response: Reply | None = None
        error: PluginError | None = None
        if pre.short is not None:
            response, error = pre.short.response, pre.short.error
            if error is not None and error.allow_fallbacks and self._passthrough and self._passthrough.upstreams:
                # An error that allows fallbacks falls back to the upstreams, as a gateway would.
                response, error = await self._forward(provider, ctx, pre.request, scope), None
        else:
            try:
                response = await self._provide(provider, ctx, pre.request, scope, handler)
            except PluginError as raised:
                error = raised
            except ApiError as raised:
                error = PluginError.from_api_error(raised)
        forwarded = response
        response, error = run_post(pre.ran, ctx, response, error, stats=self.plugin_stats)
        if forwarded is not None and forwarded is not response and isinstance(forwarded.events, AsyncIterator):
            await forwarded.events.aclose()  # type: ignore[attr-defined]  # a plugin replaced the stream
        for failure in ctx.failures:
            log.error("plugin %s failed in %s", failure.plugin, failure.hook, exc_info=failure.exception)
        decision: Decision | None = ctx.get(DECISION)
        if decision is not None and decision.latency_ms > 0:
            await trio.sleep(decision.latency_ms / 1000)
        if error is not None:
            return _error_reply(provider, error, request_id), IMMEDIATE, ctx
        assert response is not None
        fault: str | None = ctx.get(FAULT)
        if fault == "stream_error" and response.events is None:  # a whole answer fails as a whole
            error = fault_error("http_500", provider=provider.name)
            return _error_reply(provider, error, request_id), IMMEDIATE, ctx
        return response, self._delivery(provider, pre.request, response, fault), ctx

    async def _resolve(self, need: object) -> object:
        """What a suspended plugin needs: a lease from the coordinator (None if it cannot be had in time)."""
        if isinstance(need, LeaseNeed):
            return await self._link.lease(need.asks, timeout_s=LEASE_TIMEOUT_S)
        return None

    def _log_raw_request(self, scope: Scope, body: bytes) -> None:
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        text = raw_request(scope["method"], target, scope["headers"], body, prefix=go_log_prefix(time.time()))
        raw_log.info(text.rstrip())

    def _delivery(self, provider: Provider, request: PluginRequest, reply: Reply, fault: str | None) -> Delivery:
        """When each part of the answer leaves: the model's latency profile, and any delivery fault."""
        profile = None
        if self._key_latency:
            by_key = self._key_latency.get(api_key(request.headers) or "")
            profile = by_key.profile_for(request.model) if by_key is not None else None
        profile = profile or self._latency.profile_for(request.model) or self._fallback_latency
        if (profile is None and fault is None) or isinstance(reply.events, AsyncIterator):
            return IMMEDIATE  # an upstream's stream is relayed as it comes
        offsets: tuple[float, ...] = (0.0,)
        prompt_tokens, completion_tokens = reply.usage or (0, 0)
        events = reply.events
        if profile is not None and reply.status < 400:
            if events is None:
                plan = profile.plan(prompt_tokens=prompt_tokens, output_tokens=completion_tokens, rand=self._random)
                offsets = (plan.total_s,)
            else:
                tokens = count_token_events(events)
                plan = profile.plan(prompt_tokens=prompt_tokens, output_tokens=tokens, rand=self._random)
                offsets = stream_offsets(events, plan.first_s, plan.gaps_s)
        if fault is None:
            return Delivery(offsets)
        faults = self._faults.config
        if fault == "hang":
            return Delivery(offsets, hang_s=faults.hang_s)
        if fault == "trickle":
            return Delivery(offsets, trickle_s=faults.trickle_ms / 1000)
        cut = max(1, len(events) // 2) if events is not None else 0
        if fault == "stream_error":
            error_event = stream_error_event(provider=provider.name, endpoint=request.endpoint)
            return Delivery(offsets, cut_after=cut, error_event=error_event)
        return Delivery(offsets, cut_after=cut)

    def _target(self, provider: Provider, method: str, path: str, route: str | None) -> tuple[Handler, str]:
        """The handler of a route and method, and the model the path names (or ""); else a 404 or 405."""
        if route is None:
            raise ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")
        methods = provider.routes.get(route)
        if methods is not None:
            handler = methods.get(method)
            if handler is None:
                raise MethodNotAllowed(method, path, methods)
            return handler, ""
        for prefix, prefixed in provider.prefixed_routes.items():
            if route.startswith(prefix) and len(route) > len(prefix):
                if method not in prefixed:
                    raise MethodNotAllowed(method, path, prefixed)
                name = route[len(prefix) :]
                return _named(prefixed[method], name), name
        raise ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")

    async def _forward(self, provider: Provider, ctx: Context, request: PluginRequest, scope: Scope) -> Reply:
        """The request (as the plugins left it) sent to the upstreams, or answered from a cassette."""
        assert self._passthrough is not None
        ctx[UPSTREAM] = True
        result = await self._passthrough.forward(
            provider=provider.name,
            path=request.endpoint,
            body=orjson.dumps(request.body) if request.method == "POST" else b"",
            headers=request.headers,
            method=request.method,
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        return Reply(result.status, result.body, result.content_type, result.events, result.headers)

    async def _provide(
        self, provider: Provider, ctx: Context, request: PluginRequest, scope: Scope, handler: Handler | None
    ) -> Reply:
        """The provider step: a refusal, the built-in synthesiser told what a rule decided, or the upstreams."""
        refusal: ApiError | None = ctx.get(REFUSAL)
        if refusal is not None:
            raise refusal
        assert handler is not None
        decision: Decision | None = ctx.get(DECISION)
        if decision is None or decision.kind == GENERATE or (request.method != "POST" and decision.kind != PASSTHROUGH):
            return handler(scope, request.body, self._writer)
        if decision.kind == PASSTHROUGH:
            ctx[UPSTREAM] = True
            if self._passthrough is not None:
                return await self._forward(provider, ctx, request, scope)
            raise PluginError(
                502,
                "This request is set to pass through, but no upstream is configured.",
                type="server_error" if provider.name == "openai" else "api_error",
                allow_fallbacks=True,
            )
        body = request.body if decision.model is None else {**request.body, "model": decision.model}
        writer = ReplyWriter(self._generator, ContentPolicy("fixed", text=decision.message or ""))
        reply = handler(scope, body, writer)
        if reply.status != 200 or not has_overrides(decision):
            return reply
        if reply.events is None:
            return dataclasses.replace(reply, body=apply_overrides(reply.body, decision, provider=provider.name))
        assert isinstance(reply.events, Sequence)  # synthesised streams are whole lists
        return dataclasses.replace(reply, events=apply_stream_overrides(reply.events, decision, provider=provider.name))

    def _now_s(self) -> int:
        return int(time.time())

    def _chat_completions(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = chat_request.parse_chat_request(body)
        completion = chat.synthesize(request, writer, created_s=self._now_s())
        usage = (completion.prompt_tokens, completion.completion_tokens)
        if request.stream:
            events = chat.stream_events(completion, include_usage=request.include_usage)
            return Reply(200, b"", SSE, events, usage=usage)
        return Reply(200, chat.completion_body(completion), usage=usage)

    def _completions(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = completions.parse_completion_request(body)
        completion = completions.synthesize(request, writer, created_s=self._now_s())
        usage = (completion.prompt_tokens, completion.completion_tokens)
        if request.stream:
            events = completions.stream_events(completion, include_usage=request.include_usage)
            return Reply(200, b"", SSE, events, usage=usage)
        return Reply(200, completions.completion_body(completion), usage=usage)

    def _responses(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = responses.parse_responses_request(body)
        response = responses.synthesize(request, writer, created_s=self._now_s())
        usage = (response.input_tokens, response.output_tokens)
        if request.stream:
            return Reply(200, b"", SSE, responses.stream_events(response), usage=usage)
        return Reply(200, responses.response_body(response), usage=usage)

    def _embeddings(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = embeddings.parse_embeddings_request(body)
        body = embeddings.embeddings_body(request, big_payload=self._big_payload)
        return Reply(200, body, usage=(request.prompt_tokens, 0))

    def _images(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = images.parse_images_request(body)
        return Reply(200, images.images_body(request, created_s=self._now_s(), url_base=base_url(scope)))

    def _messages(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        request = anthropic_request.parse_messages_request(body)
        rand = request_random(body if isinstance(body, dict) else {}, self._generator.rng)
        message = anthropic_message.synthesize(request, writer, rand=rand)
        usage = (message.input_tokens, message.output_tokens)
        if request.stream:
            return Reply(200, b"", SSE, anthropic_wire.stream_events(message), usage=usage)
        return Reply(200, anthropic_wire.message_body(message), usage=usage)

    def _count_tokens(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        return Reply(200, anthropic_wire.count_tokens_body(body))

    def _claude_models(self) -> tuple[str, ...]:
        return tuple(model for model in self.models if model.startswith("claude")) or self.models

    def _anthropic_models(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        limit = query.get("limit", [""])[0]
        if limit and not (limit.isdigit() and 1 <= int(limit) <= 1000):
            raise ApiError(400, "limit: Input should be less than or equal to 1000 and greater than 0")
        return Reply(
            200,
            anthropic_wire.models_body(
                self._claude_models(),
                limit=int(limit) if limit else None,
                after_id=query.get("after_id", [None])[0],
                before_id=query.get("before_id", [None])[0],
            ),
        )

    def _anthropic_model(self, scope: Scope, model: str) -> Reply:
        if model not in self.models:
            raise anthropic_wire.model_not_found(model)
        return Reply(200, anthropic_wire.model_body(model))

    def _list_models(self, scope: Scope, body: Any, writer: ReplyWriter) -> Reply:
        return Reply(200, openai_wire.models_body(self.models))

    def _retrieve_model(self, scope: Scope, model: str) -> Reply:
        if model not in self.models:
            raise ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return Reply(200, orjson.dumps(openai_wire.model_object(model)))


class _TimedSend:
    """``send`` that notes when each piece of a streamed body leaves (TTFT and inter-token latency)."""

    __slots__ = ("_send", "times")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.times: list[float] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        await self._send(message)
        if message.get("body"):
            self.times.append(trio.current_time())


def _route_label(provider: Provider, route: str | None) -> str:
    """A route as a metric label: the known ones, ``/models/{id}``, or ``other`` (clients choose paths)."""
    if route is None:
        return "other"
    if route in provider.routes:
        return route
    return "/models/{id}" if route.startswith("/models/") else "other"


def _process_clock() -> Callable[[], float]:
    """Seconds since this process started: the cluster's clock for a worker on its own."""
    started = trio.current_time()
    return lambda: trio.current_time() - started


def _named(serve: Callable[[Scope, str], Reply], name: str) -> Handler:
    """A handler of a route that names its object (``/models/{id}``), as the other handlers are called."""
    return lambda scope, body, writer: serve(scope, name)


def _error_reply(provider: Provider, error: ApiError, request_id: bytes = b"") -> Reply:
    """An error in the provider's shape, with the status the error implies."""
    return Reply(error.status, provider.error_body(error, request_id.decode()), headers=error.headers)


def _not_ready() -> Reply:
    return Reply(503, b'{"status":"not ready","reason":"coordinator unreachable"}')


OPENAI_PREFIXES = ("/openai/v1/", "/v1/", "/")
ANTHROPIC_PREFIXES = ("/anthropic/v1/", "/v1/")
