"""The plugin pipeline: order, short circuits, symmetry, failures, and loading from config."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import anthropic_wire, openai_wire
from sim.errors import ApiError, UnderstudyError
from sim.pipeline import (
    BasePlugin,
    Context,
    PipelineStats,
    Plugin,
    PluginCounts,
    PluginError,
    PluginRequest,
    PluginResponse,
    ShortCircuit,
    run_post,
    run_pre,
)
from sim.plugin_loader import PluginConfigError, load_plugins

EXAMPLES = "tests.plugins.example_plugins"
OK = PluginResponse(200, b'{"ok":true}')


def make_request(model: str = "gpt-4o-mini", provider: str = "openai") -> PluginRequest:
    return PluginRequest(provider, "/chat/completions", model, {"model": model, "messages": []}, {"x-a": "1"})


def make_ctx(provider: str = "openai") -> Context:
    return Context(request_id="req_1", worker_id="w1", provider=provider)


class Recorder(BasePlugin):
    """Logs its hook calls into a shared journal; optionally short-circuits, raises, or edits."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        pre: str = "pass",
        post: str = "pass",
        short: ShortCircuit | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.pre = pre
        self.post = post
        self.short = short

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        self.journal.append(f"pre:{self.name}")
        ctx[f"{self.name}.seen_model"] = request.model
        if self.pre == "raise":
            raise RuntimeError(f"{self.name} broke")
        if self.pre == "short":
            assert self.short is not None
            return self.short
        if self.pre == "rename":
            return dataclasses.replace(request, model=request.model + "+" + self.name)
        return request

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        self.journal.append(f"post:{self.name}")
        if self.post == "raise":
            raise RuntimeError(f"{self.name} broke late")
        if self.post == "recover" and error is not None:
            return PluginResponse(200, b'{"recovered":true}'), None
        if self.post == "fail" and response is not None:
            return None, PluginError(502, "spoiled", type="server_error")
        return response, error


def full_cycle(
    plugins: Sequence[Plugin],
    request: PluginRequest,
    *,
    provider_answer: PluginResponse | PluginError = OK,
    stats: PipelineStats | None = None,
) -> tuple[PluginResponse | None, PluginError | None, list[PluginRequest], Context]:
    """What the worker does: pre-hooks, the provider unless short-circuited, post-hooks."""
    ctx = make_ctx(request.provider)
    seen_by_provider: list[PluginRequest] = []
    pre = run_pre(plugins, ctx, request, stats=stats)
    if pre.short is not None:
        response, error = pre.short.response, pre.short.error
    else:
        seen_by_provider.append(pre.request)
        if isinstance(provider_answer, PluginError):
            response, error = None, provider_answer
        else:
            response, error = provider_answer, None
    response, error = run_post(pre.ran, ctx, response, error, stats=stats)
    return response, error, seen_by_provider, ctx


def test_pre_hooks_in_order_post_hooks_in_reverse() -> None:
    journal: list[str] = []
    plugins = [Recorder(name, journal) for name in "abc"]
    response, error, seen, _ = full_cycle(plugins, make_request())
    assert journal == ["pre:a", "pre:b", "pre:c", "post:c", "post:b", "post:a"]
    assert response == OK and error is None
    assert len(seen) == 1


def test_no_plugins_passes_request_and_response_through() -> None:
    request = make_request()
    pre = run_pre((), make_ctx(), request)
    assert pre.request is request and pre.ran == () and pre.short is None
    assert run_post((), make_ctx(), OK, None) == (OK, None)


def test_short_circuit_with_response_skips_provider_and_later_plugins() -> None:
    journal: list[str] = []
    cached = PluginResponse(200, b'{"cached":true}', headers=((b"x-cache", b"hit"),))
    plugins = [
        Recorder("a", journal),
        Recorder("cache", journal, pre="short", short=ShortCircuit(response=cached)),
        Recorder("c", journal),
    ]
    response, error, seen, _ = full_cycle(plugins, make_request())
    assert response == cached and error is None
    assert seen == []
    assert journal == ["pre:a", "pre:cache", "post:cache", "post:a"]


def test_short_circuit_with_error_carries_allow_fallbacks() -> None:
    journal: list[str] = []
    refusal = PluginError(429, "slow down", type="rate_limit_error", code="rate_limited", allow_fallbacks=True)
    plugins = [Recorder("limit", journal, pre="short", short=ShortCircuit(error=refusal)), Recorder("b", journal)]
    response, error, seen, _ = full_cycle(plugins, make_request())
    assert response is None and error is refusal
    assert error.allow_fallbacks is True and error.status == 429 and error.type == "rate_limit_error"
    assert seen == []
    assert journal == ["pre:limit", "post:limit"]


def test_plugin_error_forbids_fallbacks_by_default() -> None:
    assert PluginError(403, "no").allow_fallbacks is False


def test_short_circuit_needs_exactly_one_outcome() -> None:
    with pytest.raises(ValueError):
        ShortCircuit()
    with pytest.raises(ValueError):
        ShortCircuit(response=OK, error=PluginError(400, "x"))


def test_request_changes_are_seen_by_later_plugins_and_the_provider() -> None:
    journal: list[str] = []
    plugins = [Recorder("a", journal, pre="rename"), Recorder("b", journal, pre="rename"), Recorder("c", journal)]
    _, _, seen, ctx = full_cycle(plugins, make_request("m"))
    assert ctx["b.seen_model"] == "m+a"
    assert ctx["c.seen_model"] == "m+a+b"
    assert [request.model for request in seen] == ["m+a+b"]


def test_context_carries_values_from_pre_to_post_and_identity_is_read_only() -> None:
    ctx = make_ctx()
    assert (ctx.request_id, ctx.worker_id, ctx.provider) == ("req_1", "w1", "openai")
    with pytest.raises(AttributeError):
        ctx.request_id = "other"  # type: ignore[misc]
    journal: list[str] = []
    tagger = load_plugins([{"name": "tag", "factory": f"{EXAMPLES}:create_tagger", "config": {"value": "v"}}])
    response, _, _, _ = full_cycle([*tagger, Recorder("a", journal)], make_request("gpt-x"))
    assert response is not None
    assert (b"x-tag-model", b"gpt-x") in response.headers


def test_post_hook_recovers_from_provider_error() -> None:
    journal: list[str] = []
    plugins = [Recorder("outer", journal), Recorder("rescue", journal, post="recover")]
    upstream = PluginError(503, "overloaded", type="server_error", allow_fallbacks=True)
    response, error, _, _ = full_cycle(plugins, make_request(), provider_answer=upstream)
    assert error is None
    assert response is not None and response.body == b'{"recovered":true}'


def test_post_hook_can_turn_a_response_into_an_error() -> None:
    journal: list[str] = []
    response, error, _, _ = full_cycle([Recorder("a", journal, post="fail")], make_request())
    assert response is None and error is not None and error.status == 502


def test_raising_pre_hook_becomes_500_and_keeps_symmetry() -> None:
    journal: list[str] = []
    stats = PipelineStats()
    plugins = [Recorder("a", journal), Recorder("bad", journal, pre="raise"), Recorder("c", journal)]
    response, error, seen, ctx = full_cycle(plugins, make_request(), stats=stats)
    assert response is None and error is not None
    assert (error.status, error.type, error.code) == (500, "server_error", "plugin_failed")
    assert "'bad'" in error.message and error.allow_fallbacks is False
    assert isinstance(error.__cause__, RuntimeError)
    assert seen == []
    # The failed plugin's pre-hook did not complete, so it gets no post-hook; "a" does.
    assert journal == ["pre:a", "pre:bad", "post:a"]
    assert [(f.plugin, f.hook, str(f.exception)) for f in ctx.failures] == [("bad", "pre_hook", "bad broke")]
    assert stats.snapshot() == {"a": PluginCounts(2, 0), "bad": PluginCounts(1, 1)}


def test_failure_error_type_follows_the_provider() -> None:
    journal: list[str] = []
    _, error, _, _ = full_cycle([Recorder("bad", journal, pre="raise")], make_request(provider="anthropic"))
    assert error is not None and error.type == "api_error"
    assert b'"api_error"' in anthropic_wire.error_body(error)


def test_raising_post_hook_becomes_500_and_other_post_hooks_still_run() -> None:
    journal: list[str] = []
    stats = PipelineStats()
    seen_errors: list[PluginError | None] = []

    class Watcher(Recorder):
        def post_hook(
            self, ctx: Context, response: PluginResponse | None, error: PluginError | None
        ) -> tuple[PluginResponse | None, PluginError | None]:
            seen_errors.append(error)
            return super().post_hook(ctx, response, error)

    plugins = [Watcher("outer", journal), Recorder("bad", journal, post="raise"), Recorder("inner", journal)]
    response, error, _, ctx = full_cycle(plugins, make_request(), stats=stats)
    assert journal == ["pre:outer", "pre:bad", "pre:inner", "post:inner", "post:bad", "post:outer"]
    assert response is None and error is not None and error.status == 500
    assert seen_errors == [error]
    assert [f.hook for f in ctx.failures] == ["post_hook"]
    assert stats.snapshot()["bad"] == PluginCounts(2, 1)


def test_later_post_hook_can_recover_from_a_broken_one() -> None:
    journal: list[str] = []
    plugins = [Recorder("rescue", journal, post="recover"), Recorder("bad", journal, post="raise")]
    response, error, _, ctx = full_cycle(plugins, make_request())
    assert error is None and response is not None and response.body == b'{"recovered":true}'
    assert len(ctx.failures) == 1  # recovered, but still there for the log


def test_hook_returning_garbage_counts_as_a_failure() -> None:
    class Garbage(BasePlugin):
        name = "garbage"

        def pre_hook(self, ctx: Context, request: PluginRequest) -> Any:
            return {"model": "x"}

    class BothNone(BasePlugin):
        name = "both-none"

        def post_hook(self, ctx: Context, response: Any, error: Any) -> Any:
            return None, None

    ctx = make_ctx()
    pre = run_pre([Garbage()], ctx, make_request())
    assert pre.ran == () and pre.short is not None and pre.short.error is not None
    assert pre.short.error.status == 500
    response, error = run_post([BothNone()], ctx, OK, None)
    assert response is None and error is not None and error.status == 500
    assert [f.plugin for f in ctx.failures] == ["garbage", "both-none"]


def test_raised_plugin_error_is_a_decision_not_a_failure() -> None:
    class Refuser(BasePlugin):
        name = "refuser"

        def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
            raise PluginError(401, "no key", type="authentication_error")

    journal: list[str] = []
    stats = PipelineStats()
    response, error, seen, ctx = full_cycle([Recorder("a", journal), Refuser()], make_request(), stats=stats)
    assert error is not None and error.status == 401 and response is None and seen == []
    assert ctx.failures == [] and stats.snapshot()["refuser"] == PluginCounts(2, 0)


def test_run_post_refuses_an_ambiguous_outcome() -> None:
    with pytest.raises(ValueError):
        run_post((), make_ctx(), None, None)


def test_plugin_error_renders_in_both_provider_shapes() -> None:
    error = PluginError(403, "denied", type="permission_error", code="model_denied")
    assert isinstance(error, ApiError) and isinstance(error, UnderstudyError)
    assert b'"code":"model_denied"' in openai_wire.error_body(error)
    assert b'"permission_error"' in anthropic_wire.error_body(error)
    upstream = ApiError(404, "nope", error_type="not_found_error", code="model_not_found")
    converted = PluginError.from_api_error(upstream, allow_fallbacks=True)
    assert (converted.status, converted.type, converted.code, converted.allow_fallbacks) == (
        404,
        "not_found_error",
        "model_not_found",
        True,
    )


# --- loading from configuration ---------------------------------------------------------------


def test_load_example_plugins_and_run_them() -> None:
    plugins = load_plugins(
        [
            {"name": "tag", "factory": f"{EXAMPLES}:create_tagger", "config": {"header": "X-Team", "value": "s"}},
            {"name": "deny", "factory": f"{EXAMPLES}:create_denier", "config": {"models": ["gpt-4o"]}},
            {"name": "explode", "factory": f"{EXAMPLES}:create_exploding", "enabled": False},
        ]
    )
    assert [plugin.name for plugin in plugins] == ["tag", "deny"]

    response, error, _, _ = full_cycle(plugins, make_request("gpt-4o-mini"))
    assert error is None and response is not None
    assert (b"x-team", b"s") in response.headers

    response, error, seen, _ = full_cycle(plugins, make_request("gpt-4o"))
    assert response is None and seen == []
    assert error is not None and (error.status, error.code, error.allow_fallbacks) == (403, "model_denied", False)


def test_load_exploding_example_breaks_only_its_request() -> None:
    stats = PipelineStats()
    plugins = load_plugins(
        [{"name": "explode", "factory": f"{EXAMPLES}:create_exploding", "config": {"where": "post"}}]
    )
    response, error, _, _ = full_cycle(plugins, make_request(), stats=stats)
    assert response is None and error is not None and error.status == 500
    assert stats.snapshot() == {"explode": PluginCounts(2, 1)}


def test_load_nothing() -> None:
    assert load_plugins(None) == ()
    assert load_plugins([]) == ()


def test_load_reports_every_problem_at_once_with_paths() -> None:
    specs = [
        {"name": "tag", "factory": f"{EXAMPLES}:create_tagger"},  # fine
        {"name": "a", "factory": "no_such_module_understudy:create"},
        {"name": "b", "factory": f"{EXAMPLES}:missing"},
        {"name": "c", "factory": f"{EXAMPLES}:create_denier", "config": {"models": "gpt-4o"}},  # factory raises
        {"name": "tag", "factory": f"{EXAMPLES}:create_tagger"},  # duplicate
        {"name": "d", "factory": "not a factory"},
        {"factory": f"{EXAMPLES}:create_tagger", "config": [], "colour": "red", "enabled": "yes"},
        "just a string",
        {"name": "e", "factory": f"{EXAMPLES}:create_not_a_plugin"},
        {"name": "f", "factory": f"{EXAMPLES}:not_callable"},
        {"name": "g", "factory": f"{EXAMPLES}:create_denier"},  # plugin is named "deny"
    ]
    with pytest.raises(PluginConfigError) as caught:
        load_plugins(specs, path="config.plugins")
    errors = caught.value.errors
    expected_prefixes = [
        "config.plugins[1].factory: cannot import module 'no_such_module_understudy'",
        f"config.plugins[2].factory: module '{EXAMPLES}' has no attribute 'missing'",
        f"config.plugins[3].factory: {EXAMPLES}:create_denier(config) raised ValueError",
        "config.plugins[4].name: duplicate plugin name 'tag' (first used by config.plugins[0])",
        "config.plugins[5].factory: expected 'package.module:callable'",
        "config.plugins[6].colour: unknown key",
        "config.plugins[6].name: expected a non-empty string",
        "config.plugins[6].config: expected a mapping",
        "config.plugins[6].enabled: expected true or false",
        "config.plugins[7]: expected a mapping",
        "config.plugins[8].factory: tests.plugins.example_plugins:create_not_a_plugin returned object, lacking name",
        f"config.plugins[9].factory: '{EXAMPLES}:not_callable' is not callable",
        "config.plugins[10].name: the factory's plugin is named 'deny', not 'g'",
    ]
    assert len(errors) == len(expected_prefixes), errors
    for error, prefix in zip(errors, expected_prefixes, strict=True):
        assert error.startswith(prefix), (error, prefix)
    assert all(error in str(caught.value) for error in errors)


def test_load_refuses_a_non_list() -> None:
    with pytest.raises(PluginConfigError) as caught:
        load_plugins({"name": "tag"})
    assert caught.value.errors == ("plugins: expected a list of plugin specs, got dict",)


# --- symmetry, for any mix of behaviours ------------------------------------------------------

BEHAVIOURS = st.sampled_from(["pass", "rename", "short-response", "short-error", "raise", "raise-plugin-error"])


@given(
    pre=st.lists(BEHAVIOURS, max_size=8),
    post=st.lists(st.sampled_from(["pass", "raise", "recover", "fail"]), min_size=8, max_size=8),
    provider_fails=st.booleans(),
)
def test_post_hooks_run_exactly_for_completed_pre_hooks_in_reverse(
    pre: list[str], post: list[str], provider_fails: bool
) -> None:
    journal: list[str] = []
    plugins: list[Plugin] = []
    for index, behaviour in enumerate(pre):
        name = f"p{index}"
        if behaviour == "short-response":
            plugins.append(Recorder(name, journal, pre="short", post=post[index], short=ShortCircuit(response=OK)))
        elif behaviour == "short-error":
            short = ShortCircuit(error=PluginError(400, "no"))
            plugins.append(Recorder(name, journal, pre="short", post=post[index], short=short))
        elif behaviour == "raise-plugin-error":
            plugins.append(_PluginErrorRaiser(name, journal, post=post[index]))
        else:
            plugins.append(Recorder(name, journal, pre=behaviour, post=post[index]))
    stats = PipelineStats()
    upstream: PluginResponse | PluginError = PluginError(500, "upstream") if provider_fails else OK
    response, error, seen, ctx = full_cycle(plugins, make_request(), provider_answer=upstream, stats=stats)

    # Which pre-hooks completed, derived from the behaviours alone.
    stop = next((i for i, b in enumerate(pre) if b != "pass" and b != "rename"), len(pre))
    attempted = [f"p{i}" for i in range(min(stop + 1, len(pre)))]
    completed = attempted if stop == len(pre) or pre[stop] != "raise" else attempted[:-1]

    assert journal == [f"pre:{n}" for n in attempted] + [f"post:{n}" for n in reversed(completed)]
    assert len(seen) == (1 if stop == len(pre) else 0)
    assert (response is None) != (error is None)
    pre_failures = sum(1 for b in pre[: stop + 1] if b == "raise")
    failures = pre_failures + sum(1 for n in completed if post[int(n[1:])] == "raise")
    assert len(ctx.failures) == failures
    snapshot = stats.snapshot()
    assert sum(counts.failures for counts in snapshot.values()) == failures
    assert sum(counts.calls for counts in snapshot.values()) == len(attempted) + len(completed)


class _PluginErrorRaiser(Recorder):
    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        self.journal.append(f"pre:{self.name}")
        raise PluginError(401, "refused on purpose")
