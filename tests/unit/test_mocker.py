"""The mocker's rule engine: ordering, probability, conditions, weights, templates, validation, latency."""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.mocker import DEFAULT_ERROR, MockerConfigError, RequestFacts, load_mocker
from sim.templates import TemplateError, compile_template

FACTS = RequestFacts(
    provider="openai",
    model="gpt-4o",
    message_text="system says hi. user needs HELP now",
    last_user_message="user needs HELP now",
    size_bytes=500,
    headers={"x-tenant": "acme", "user-agent": "pytest"},
)


def facts(**changes: Any) -> RequestFacts:
    fields = {name: getattr(FACTS, name) for name in RequestFacts.__slots__}
    fields.update(changes)
    return RequestFacts(**fields)


def say(text: str, **rule: Any) -> dict[str, Any]:
    return {"responses": [{"type": "success", "content": {"message": text}}], **rule}


def mocker(*rules: dict[str, Any], **section: Any) -> Any:
    return load_mocker({"enabled": True, "rules": list(rules), **section})


def template_rule(template: str) -> Any:
    return mocker(say("", name="t") | {"responses": [{"type": "success", "content": {"message_template": template}}]})


def render(template: str, seed: int = 0, request: RequestFacts = FACTS) -> str:
    message = template_rule(template).decide(request, random.Random(seed)).message
    assert message is not None
    return str(message)


def config_errors(document: Any) -> tuple[str, ...]:
    with pytest.raises(MockerConfigError) as info:
        load_mocker(document)
    return info.value.errors


# --- defaults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [None, {}])
def test_missing_section_gives_a_disabled_mocker_that_generates(document: Any) -> None:
    m = load_mocker(document)
    decision = m.decide(FACTS, random.Random(0))
    assert (m.enabled, decision.kind, decision.rule, decision.latency_ms) == (False, "generate", None, 0.0)


def test_disabled_mocker_ignores_its_rules() -> None:
    m = load_mocker({"enabled": False, "rules": [say("ruled", name="r")]})
    assert m.decide(FACTS, random.Random(0)).kind == "generate"
    assert m.rule_names == ("r",)


@pytest.mark.parametrize(
    ("behavior", "kind"), [("success", "generate"), ("error", "error"), ("passthrough", "passthrough")]
)
def test_default_behavior_answers_when_no_rule_matches(behavior: str, kind: str) -> None:
    m = mocker(say("x", name="anthropic-only", conditions={"providers": ["anthropic"]}), default_behavior=behavior)
    decision = m.decide(FACTS, random.Random(0))
    assert (decision.rule, decision.kind) == (None, kind)
    assert decision.error == (DEFAULT_ERROR if kind == "error" else None)
    if kind == "error":
        assert decision.error is not None and decision.error.status_code == 500


def test_default_behavior_gets_the_global_latency() -> None:
    m = mocker(default_behavior="passthrough", global_latency={"type": "uniform", "min_ms": 5, "max_ms": 20})
    rand = random.Random(1)
    draws = [m.decide(FACTS, rand).latency_ms for _ in range(200)]
    assert all(5 <= ms <= 20 for ms in draws) and len(set(draws)) > 100


# --- ordering and probability -------------------------------------------------------------------


def test_higher_priority_wins_and_ties_keep_file_order() -> None:
    m = mocker(
        say("low", name="low", priority=1),
        say("tie-first", name="tie-first", priority=5),
        say("tie-second", name="tie-second", priority=5),
    )
    assert m.decide(FACTS, random.Random(0)).message == "tie-first"
    m = mocker(say("low", name="low", priority=1), say("high", name="high", priority=9))
    assert m.decide(FACTS, random.Random(0)).rule == "high"


def test_disabled_rule_is_skipped() -> None:
    m = mocker(say("off", name="off", priority=9, enabled=False), say("on", name="on"))
    assert m.decide(FACTS, random.Random(0)).rule == "on"


def test_probability_zero_never_applies_and_one_always_does() -> None:
    never = mocker(say("x", name="never", probability=0))
    always = mocker(say("x", name="always", probability=1))
    rand = random.Random(7)
    assert all(never.decide(FACTS, rand).rule is None for _ in range(1000))
    assert all(always.decide(FACTS, rand).rule == "always" for _ in range(1000))


def test_probability_is_the_share_of_requests_the_rule_takes() -> None:
    m = mocker(say("x", name="sometimes", probability=0.3))
    rand = random.Random(11)
    hits = sum(m.decide(FACTS, rand).rule == "sometimes" for _ in range(20_000))
    assert 0.28 < hits / 20_000 < 0.32


def test_a_rule_that_loses_its_draw_lets_the_next_rule_try() -> None:
    m = mocker(say("rare", name="rare", priority=9, probability=0.0), say("usual", name="usual"))
    assert m.decide(FACTS, random.Random(0)).rule == "usual"


# --- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "matching", "other"),
    [
        ({"providers": ["openai"]}, {}, {"provider": "anthropic"}),
        ({"models": ["gpt-4o"]}, {}, {"model": "gpt-4o-mini"}),
        ({"models": ["gpt-4.1*"]}, {"model": "gpt-4.1-mini"}, {"model": "gpt-4o"}),
        ({"models": ["claude-?-haiku", "gpt-4o"]}, {"model": "claude-3-haiku"}, {"model": "claude-35-haiku"}),
        ({"message_regex": "(?i)help"}, {}, {"message_text": "all good"}),
        ({"message_regex": "^system"}, {}, {"message_text": "user: system"}),
        ({"request_size": {"min": 100, "max": 500}}, {}, {"size_bytes": 501}),
        ({"request_size": {"min": 100}}, {"size_bytes": 10**9}, {"size_bytes": 99}),
        ({"request_size": {"max": 500}}, {"size_bytes": 0}, {"size_bytes": 600}),
        ({"headers": {"X-Tenant": "^acme$"}}, {}, {"headers": {"x-tenant": "acme-corp"}}),
        ({"headers": {"x-tenant": "acme"}}, {}, {"headers": {}}),
        ({"providers": ["openai"], "models": ["gpt-*"]}, {}, {"provider": "anthropic"}),
    ],
)
def test_each_condition_kind_matches_and_rejects(
    conditions: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    m = mocker(say("x", name="c", conditions=conditions))
    assert m.decide(facts(**matching), random.Random(0)).rule == "c"
    assert m.decide(facts(**other), random.Random(0)).rule is None


def test_empty_conditions_match_everything() -> None:
    m = mocker(say("x", name="all", conditions={}))
    assert m.decide(facts(provider="anthropic", model="claude", size_bytes=0), random.Random(0)).rule == "all"


# --- responses ----------------------------------------------------------------------------------


def test_success_response_carries_its_fields() -> None:
    content = {
        "message": "static {{model}}",
        "model": "gpt-mock",
        "finish_reason": "length",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "custom_fields": {"system_fingerprint": "fp_x"},
    }
    m = mocker({"name": "s", "responses": [{"type": "success", "content": content}]})
    d = m.decide(FACTS, random.Random(0))
    assert (d.kind, d.message, d.model, d.finish_reason) == ("success", "static {{model}}", "gpt-mock", "length")
    assert d.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert d.custom_fields == {"system_fingerprint": "fp_x"}


def test_error_response_carries_its_error_and_fallback_flag() -> None:
    error = {"message": "Service unavailable", "type": "server_error", "code": 503, "status_code": 503}
    m = mocker({"name": "e", "responses": [{"type": "error", "allow_fallbacks": False, "error": error}]})
    d = m.decide(FACTS, random.Random(0))
    assert d.kind == "error" and d.allow_fallbacks is False and d.error is not None
    assert (d.error.message, d.error.type, d.error.code, d.error.status_code) == (
        "Service unavailable",
        "server_error",
        "503",
        503,
    )


def test_error_defaults_to_500_and_fallbacks_allowed() -> None:
    d = mocker({"name": "e", "responses": [{"type": "error", "error": {"message": "no"}}]}).decide(
        FACTS, random.Random(0)
    )
    assert d.error is not None and d.error.status_code == 500 and d.allow_fallbacks is True


def test_weighted_choice_follows_the_weights() -> None:
    responses = [
        {"type": "success", "weight": 0.6, "content": {"message": "a"}},
        {"type": "passthrough", "weight": 0.3},
        {"type": "error", "weight": 0.1, "error": {"message": "e"}},
    ]
    m = mocker({"name": "w", "responses": responses})
    rand = random.Random(5)
    counts = Counter(m.decide(FACTS, rand).kind for _ in range(20_000))
    assert abs(counts["success"] / 20_000 - 0.6) < 0.02
    assert abs(counts["passthrough"] / 20_000 - 0.3) < 0.02
    assert abs(counts["error"] / 20_000 - 0.1) < 0.015


@settings(max_examples=50, deadline=None)
@given(weights=st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=6), seed=st.integers(0, 2**32))
def test_weighted_choice_only_picks_configured_responses_in_proportion(weights: list[float], seed: int) -> None:
    responses = [{"type": "success", "weight": w, "content": {"message": str(i)}} for i, w in enumerate(weights)]
    m = mocker({"name": "w", "responses": responses})
    rand = random.Random(seed)
    draws = 2000
    counts = Counter(m.decide(FACTS, rand).message for _ in range(draws))
    assert set(counts) <= {str(i) for i in range(len(weights))}
    total = sum(weights)
    for i, weight in enumerate(weights):
        share = weight / total
        # Five standard deviations of a binomial proportion: fails by chance about once in 10^6 runs.
        assert abs(counts[str(i)] / draws - share) <= 5 * (share * (1 - share) / draws) ** 0.5 + 1e-9


# --- latency ------------------------------------------------------------------------------------


def test_rule_latency_overrides_global_latency() -> None:
    m = mocker(
        say("x", name="fixed", latency={"type": "fixed", "min_ms": 100}),
        global_latency={"type": "uniform", "min_ms": 1, "max_ms": 2},
    )
    assert m.decide(FACTS, random.Random(0)).latency_ms == 100.0


def test_uniform_latency_stays_within_bounds_and_spreads() -> None:
    m = mocker(say("x", name="u", latency={"type": "uniform", "min_ms": 50, "max_ms": 200}))
    rand = random.Random(2)
    draws = [m.decide(FACTS, rand).latency_ms for _ in range(5000)]
    assert 50 <= min(draws) < 55 and 195 < max(draws) <= 200


def test_rule_without_latency_uses_global_then_zero() -> None:
    with_global = mocker(say("x", name="g"), global_latency={"type": "fixed", "min_ms": 7})
    assert with_global.decide(FACTS, random.Random(0)).latency_ms == 7.0
    assert mocker(say("x", name="z")).decide(FACTS, random.Random(0)).latency_ms == 0.0


# --- templates ----------------------------------------------------------------------------------


def test_template_request_fields() -> None:
    text = render("{{ model }} via {{provider}}: {{request.last_user_message}}")
    assert text == "gpt-4o via openai: user needs HELP now"


FAKER_SHAPES = {
    "name": r"[A-Z][\w'-]+ [A-Z][\w'-]+",
    "first_name": r"[A-Z][\w'-]+",
    "last_name": r"[A-Z][\w'-]+",
    "email": r"[a-z'-]+\.[a-z'-]+@example\.(com|org|net)",
    "phone": r"[\d()+.x -]{7,}",
    "address": r".+\d{5}",
    "city": r"[A-Z][\w ]+",
    "state": r"[A-Z][a-z]+( [A-Z][a-z]+)*",
    "zip_code": r"\d{5}",
    "company": r".+",
    "job_title": r".+",
    "word": r"[a-z]+",
    "sentence": r"[A-Z][a-z]*( [a-z]+){7}\.",
    "lorem_ipsum": r"[A-Z][a-z]*( [a-z]+){9}\.",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    "hex_color": r"#[0-9a-f]{6}",
    "integer": r"\d+",
    "float": r"\d+\.\d\d",
    "boolean": r"true|false",
    "date": r"20[0-2]\d-\d\d-\d\d",
    "datetime": r"20[0-2]\d-\d\d-\d\d \d\d:\d\d:\d\d",
}


@pytest.mark.parametrize("method", sorted(FAKER_SHAPES))
def test_every_faker_method_renders_its_shape(method: str) -> None:
    for seed in range(20):
        text = render(f"<{{{{faker.{method}}}}}>", seed)
        assert re.fullmatch(f"<(?:{FAKER_SHAPES[method]})>", text), text


def test_faker_arguments_are_honoured() -> None:
    for seed in range(200):
        assert 3 <= int(render("{{faker.integer:3,5}}", seed)) <= 5
        assert -1.0 <= float(render("{{faker.float: -1, 1}}", seed)) <= 1.0
    assert len(render("{{faker.sentence:3}}").split()) == 3
    assert len(render("{{faker.lorem_ipsum:25}}").split()) == 25
    assert {render("{{faker.integer:4,4}}", seed) for seed in range(5)} == {"4"}
    assert uuid.UUID(render("{{faker.uuid}}")).version == 4


def test_faker_values_are_fresh_per_request_and_deterministic_per_seed() -> None:
    template = "{{faker.name}} {{faker.city}} {{faker.company}} {{faker.uuid}} {{faker.date}} {{faker.phone}}"
    rendered = [render(template, seed) for seed in range(20)]
    assert len(set(rendered)) == 20
    assert rendered == [render(template, seed) for seed in range(20)]
    m = template_rule(template)
    rand = random.Random(99)
    assert m.decide(FACTS, rand).message != m.decide(FACTS, rand).message


def test_whole_decisions_are_deterministic_for_a_seed() -> None:
    responses = [
        {"type": "success", "weight": 2, "content": {"message_template": "{{faker.sentence}}"}},
        {"type": "error", "error": {"message": "e"}},
    ]
    m = mocker(
        {
            "name": "r",
            "probability": 0.5,
            "responses": responses,
            "latency": {"type": "uniform", "min_ms": 0, "max_ms": 9},
        }
    )

    def run(seed: int) -> list[Any]:
        rand = random.Random(seed)
        return [m.decide(FACTS, rand) for _ in range(50)]

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{faker.nope}}", "unknown faker method 'nope'"),
        ("{{modle}}", "unknown placeholder {{modle}}"),
        ("{{faker.integer:5,1}}", "high 1 is below low 5"),
        ("{{faker.integer:a,b}}", "takes two integers"),
        ("{{faker.float:1}}", "takes two numbers"),
        ("{{faker.sentence:0}}", "word count must be between"),
        ("{{faker.sentence:x}}", "takes a word count"),
        ("{{faker.uuid:3}}", "takes no arguments"),
        ("hello {{model", "unclosed {{"),
    ],
)
def test_bad_templates_fail_at_load_with_their_path(template: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(fragment)):
        compile_template(template)
    errors = config_errors(
        {"rules": [{"name": "t", "responses": [{"type": "success", "content": {"message_template": template}}]}]}
    )
    assert len(errors) == 1
    assert errors[0].startswith("mocker.rules[0].responses[0].content.message_template: ")
    assert fragment in errors[0]


def test_static_template_renders_without_placeholders() -> None:
    template = compile_template("just text")
    assert template.static == "just text" and template.render(FACTS, random.Random(0)) == "just text"


# --- validation ---------------------------------------------------------------------------------


def test_validation_lists_every_error_with_its_path() -> None:
    document = {
        "enabled": "yes",
        "default_behaviour": "success",
        "global_latency": {"type": "uniform", "min_ms": 10, "max_ms": 5},
        "rules": [
            {
                "name": "a",
                "probability": 1.5,
                "priority": "high",
                "conditons": {},
                "responses": [{"type": "success", "weight": 0, "content": {"message": "x"}}],
            },
            {"name": "a", "responses": [{"type": "teapot"}]},
            {
                "responses": [{"type": "error"}, {"type": "success", "content": {"model": "m"}}],
                "conditions": {
                    "message_regex": "(",
                    "headers": {"x-a": "["},
                    "request_size": {"min": 10, "max": 1},
                    "providers": ["azure"],
                },
                "latency": {"type": "fixed", "min_ms": -1},
            },
        ],
    }
    assert set(config_errors(document)) == {
        "mocker.enabled: must be true or false, got str",
        "mocker.default_behaviour: unknown field; allowed: enabled, default_behavior, global_latency, rules",
        "mocker.global_latency.max_ms: must be >= min_ms (10)",
        "mocker.rules[0].probability: must be between 0 and 1",
        "mocker.rules[0].priority: must be an integer, got str",
        "mocker.rules[0].conditons: unknown field; allowed: name, enabled, priority, probability, conditions, "
        "responses, latency",
        "mocker.rules[0].responses[0].weight: must be > 0",
        "mocker.rules[1].name: duplicate rule name 'a' (first at rules[0])",
        "mocker.rules[1].responses[0].type: must be one of success, error, passthrough, got 'teapot'",
        "mocker.rules[2].name: is required",
        "mocker.rules[2].conditions.message_regex: invalid regular expression: "
        "missing ), unterminated subpattern at position 0",
        "mocker.rules[2].conditions.headers.x-a: invalid regular expression: unterminated character set at position 0",
        "mocker.rules[2].conditions.request_size.max: must be >= min (10)",
        "mocker.rules[2].conditions.providers[0]: must be one of openai, anthropic, got 'azure'",
        "mocker.rules[2].latency.min_ms: must be >= 0",
        "mocker.rules[2].responses[0].error: is required for an error response",
        "mocker.rules[2].responses[1].content: needs a message or a message_template",
    }


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"responses": []}, "mocker.rules[0].responses: needs at least one response"),
        (
            {"responses": [{"type": "success"}]},
            "mocker.rules[0].responses[0].content: is required for a success response (with message or "
            "message_template)",
        ),
        (
            {"responses": [{"type": "success", "content": {"message": "a", "message_template": "b"}}]},
            "mocker.rules[0].responses[0].content: give message or message_template, not both",
        ),
        (
            {"responses": [{"type": "passthrough", "error": {"message": "x"}}]},
            "mocker.rules[0].responses[0].error: only an error response has error",
        ),
        (
            {"responses": [{"type": "error", "error": {"message": "x", "status_code": 99}}]},
            "mocker.rules[0].responses[0].error.status_code: must be between 100 and 599",
        ),
        (
            {"responses": [{"type": "error", "error": {"message": "x", "staus": 500}}]},
            "mocker.rules[0].responses[0].error.staus: unknown field; allowed: message, type, code, status_code",
        ),
        ({"latency": {"type": "fixed", "min_ms": 1, "max_ms": 5}}, "mocker.rules[0].latency.max_ms: only a uniform"),
        ({"latency": {"type": "uniform", "min_ms": 1}}, "mocker.rules[0].latency.max_ms: is required for a uniform"),
        ({"latency": {"type": "gamma", "min_ms": 1}}, "mocker.rules[0].latency.type: must be one of fixed, uniform"),
        ({"probability": True}, "mocker.rules[0].probability: must be a finite number, got True"),
        ({"enabled": 1}, "mocker.rules[0].enabled: must be true or false, got int"),
        ({"conditions": {"models": "gpt-4o"}}, "mocker.rules[0].conditions.models: must be a list, got str"),
        (
            {"responses": [{"type": "success", "content": {"message": "x", "usage": {"prompt_tokens": -1}}}]},
            "mocker.rules[0].responses[0].content.usage.prompt_tokens: must be >= 0",
        ),
    ],
)
def test_single_mistakes_are_named(rule: dict[str, Any], error: str) -> None:
    document = {"rules": [say("x", name="r") | rule]}
    errors = config_errors(document)
    assert any(e.startswith(error) for e in errors), errors


def test_rule_without_responses_is_an_error() -> None:
    errors = config_errors({"rules": [{"name": "r"}]})
    assert errors == ("mocker.rules[0].responses: is required (at least one response)",)


def test_non_mapping_section_is_an_error() -> None:
    assert config_errors(["rules"]) == ("mocker: must be a mapping, got list",)
    assert load_mocker({"rules": []}).decide(FACTS, random.Random(0)).kind == "generate"


def test_custom_path_prefixes_errors() -> None:
    with pytest.raises(MockerConfigError) as info:
        load_mocker({"rules": "x"}, path="plugins[0].mocker")
    assert info.value.errors == ("plugins[0].mocker.rules: must be a list, got str",)
    assert "plugins[0].mocker.rules" in str(info.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["enabled", "rules", "name", "responses", "type", "content", "message_template", "conditions", "latency", "error"]
)
CONFIG_LIKE = st.recursive(
    JSON, lambda inner: st.dictionaries(KEYS, inner, max_size=5) | st.lists(inner, max_size=3), max_leaves=30
)


@settings(max_examples=300, deadline=None)
@given(document=CONFIG_LIKE)
def test_arbitrary_documents_load_or_raise_only_config_errors(document: Any) -> None:
    try:
        m = load_mocker(document)
    except MockerConfigError as exc:
        assert exc.errors and all(": " in error for error in exc.errors)
    else:
        m.decide(FACTS, random.Random(0))
