"""Validation and compilation of the ``mocker:`` configuration section.

Theory of operation: the document (already decoded from YAML or JSON) is
walked once; every check appends ``"path: message"`` to one list instead of
raising, so a user sees every mistake of a config file at once. Each reader
returns the compiled value, or None when its part was bad; a bad part never
stops the walk of its siblings. Unknown keys are errors everywhere, so a
misspelt field cannot pass silently. If the list is not empty at the end,
:class:`MockerConfigError` carries all of it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from sim.errors import SectionError
from sim.mocker_rules import (
    ERROR,
    PASSTHROUGH,
    SUCCESS,
    Conditions,
    ErrorSpec,
    Latency,
    ResponseSpec,
    Rule,
)
from sim.templates import Template, TemplateError, compile_template

PROVIDERS = ("openai", "anthropic")
DEFAULT_BEHAVIORS = (SUCCESS, ERROR, PASSTHROUGH)
RESPONSE_TYPES = (SUCCESS, ERROR, PASSTHROUGH)
LATENCY_TYPES = ("fixed", "uniform")
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
DEFAULT_ERROR_STATUS = 500
_GLOB_CHARS = frozenset("*?[")


class MockerConfigError(SectionError):
    """The ``mocker`` section is invalid."""

    section = "mocker"


@dataclass(frozen=True, slots=True)
class MockerSpec:
    """A validated mocker section.

    ``rules`` holds the enabled rules in evaluation order (priority, then file
    order); ``rule_names`` every rule, enabled or not, in file order.
    """

    enabled: bool
    default_behavior: str
    global_latency: Latency | None
    rules: tuple[Rule, ...]
    rule_names: tuple[str, ...]


class _Reader:
    """Typed access to a config tree that records problems instead of raising."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {key!r}")
            elif key not in allowed:
                self.fail(f"{path}.{key}", f"unknown field; allowed: {', '.join(allowed)}")
        return value

    def string(self, value: Any, path: str, *, choices: tuple[str, ...] = (), non_empty: bool = False) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {type(value).__name__}")
            return None
        if choices and value not in choices:
            self.fail(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return None
        if non_empty and not value:
            self.fail(path, "must not be empty")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, got {type(value).__name__}")
            return None
        return value

    def integer(self, value: Any, path: str, *, low: int | None = None, high: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {type(value).__name__}")
            return None
        return value if self._within(value, path, low, high) else None

    def number(self, value: Any, path: str, *, low: float | None = None, high: float | None = None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"must be a finite number, got {value!r}")
            return None
        return float(value) if self._within(value, path, low, high) else None

    def _within(self, value: float, path: str, low: float | None, high: float | None) -> bool:
        if low is not None and high is not None and not low <= value <= high:
            self.fail(path, f"must be between {low:g} and {high:g}")
        elif low is not None and value < low:
            self.fail(path, f"must be >= {low:g}")
        elif high is not None and value > high:
            self.fail(path, f"must be <= {high:g}")
        else:
            return True
        return False

    def sequence(self, value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list | tuple):
            self.fail(path, f"must be a list, got {type(value).__name__}")
            return None
        return list(value)

    def regex(self, value: Any, path: str) -> re.Pattern[str] | None:
        source = self.string(value, path)
        if source is None:
            return None
        try:
            return re.compile(source)
        except (re.error, OverflowError, RecursionError) as exc:
            self.fail(path, f"invalid regular expression: {exc}")
            return None


def _latency(r: _Reader, value: Any, path: str) -> Latency | None:
    doc = r.mapping(value, path, ("type", "min_ms", "max_ms"))
    if doc is None:
        return None
    kind = r.string(doc["type"], f"{path}.type", choices=LATENCY_TYPES) if "type" in doc else None
    if "type" not in doc:
        r.fail(f"{path}.type", f"is required ({' or '.join(LATENCY_TYPES)})")
    low = r.number(doc["min_ms"], f"{path}.min_ms", low=0) if "min_ms" in doc else None
    if "min_ms" not in doc:
        r.fail(f"{path}.min_ms", "is required")
    high = r.number(doc["max_ms"], f"{path}.max_ms", low=0) if "max_ms" in doc else None
    if kind == "fixed" and "max_ms" in doc:
        r.fail(f"{path}.max_ms", "only a uniform latency has a max_ms")
        return None
    if kind == "uniform" and "max_ms" not in doc:
        r.fail(f"{path}.max_ms", "is required for a uniform latency")
    if low is not None and high is not None and high < low:
        r.fail(f"{path}.max_ms", f"must be >= min_ms ({low:g})")
        return None
    if kind is None or low is None or (kind == "uniform" and high is None):
        return None
    return Latency(kind, float(low), float(low if high is None else high))


def _models(r: _Reader, value: Any, path: str) -> tuple[frozenset[str], re.Pattern[str] | None]:
    exact: set[str] = set()
    globs: list[str] = []
    for index, item in enumerate(r.sequence(value, path) or ()):
        model = r.string(item, f"{path}[{index}]", non_empty=True)
        if model is not None and _GLOB_CHARS.isdisjoint(model):
            exact.add(model)
        elif model is not None:
            globs.append(model)
    pattern = re.compile("|".join(f"(?:{translate(glob)})" for glob in globs)) if globs else None
    return frozenset(exact), pattern


def _conditions(r: _Reader, value: Any, path: str) -> Conditions | None:
    fields = ("providers", "models", "message_regex", "request_size", "headers")
    doc = r.mapping(value, path, fields)
    if doc is None:
        return None
    providers: frozenset[str] | None = None
    if "providers" in doc:
        items = r.sequence(doc["providers"], f"{path}.providers") or []
        names = [r.string(item, f"{path}.providers[{i}]", choices=PROVIDERS) for i, item in enumerate(items)]
        providers = frozenset(name for name in names if name is not None) or None
    exact, globs = _models(r, doc["models"], f"{path}.models") if "models" in doc else (frozenset[str](), None)
    message = r.regex(doc["message_regex"], f"{path}.message_regex") if "message_regex" in doc else None
    size_min, size_max = 0, None
    if "request_size" in doc:
        size_path = f"{path}.request_size"
        size = r.mapping(doc["request_size"], size_path, ("min", "max")) or {}
        size_min = (r.integer(size["min"], f"{size_path}.min", low=0) if "min" in size else 0) or 0
        size_max = r.integer(size["max"], f"{size_path}.max", low=0) if "max" in size else None
        if size_max is not None and size_max < size_min:
            r.fail(f"{size_path}.max", f"must be >= min ({size_min})")
    headers: list[tuple[str, re.Pattern[str]]] = []
    if "headers" in doc:
        header_doc = doc["headers"]
        if not isinstance(header_doc, Mapping):
            r.fail(f"{path}.headers", f"must be a mapping of header name to regex, got {type(header_doc).__name__}")
            header_doc = {}
        for name, source in header_doc.items():
            if not isinstance(name, str) or not name:
                r.fail(f"{path}.headers", f"header names must be non-empty strings, got {name!r}")
                continue
            pattern = r.regex(source, f"{path}.headers.{name}")
            if pattern is not None:
                headers.append((name.lower(), pattern))
    return Conditions(providers, exact, globs, message, size_min, size_max, tuple(headers))


def _usage(r: _Reader, value: Any, path: str) -> Mapping[str, int] | None:
    doc = r.mapping(value, path, USAGE_KEYS)
    if doc is None:
        return None
    usage = {key: r.integer(doc[key], f"{path}.{key}", low=0) for key in USAGE_KEYS if key in doc}
    counts = {key: count for key, count in usage.items() if count is not None}
    if "total_tokens" not in doc and "prompt_tokens" in counts and "completion_tokens" in counts:
        counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    return counts


def _success(r: _Reader, response: Mapping[str, Any], path: str, weight: float) -> ResponseSpec | None:
    if "content" not in response:
        r.fail(f"{path}.content", "is required for a success response (with message or message_template)")
        return None
    path = f"{path}.content"
    fields = ("message", "message_template", "model", "usage", "finish_reason", "custom_fields")
    doc = r.mapping(response["content"], path, fields)
    if doc is None:
        return None
    template = None
    if "message" in doc and "message_template" in doc:
        r.fail(path, "give message or message_template, not both")
    elif "message_template" in doc:
        source = r.string(doc["message_template"], f"{path}.message_template")
        if source is not None:
            try:
                template = compile_template(source)
            except TemplateError as exc:
                r.fail(f"{path}.message_template", str(exc))
    elif "message" in doc:
        # A plain message is sent as written, as in Bifrost: braces in it are not placeholders.
        text = r.string(doc["message"], f"{path}.message")
        template = None if text is None else Template(text, (text,), text)
    else:
        r.fail(path, "needs a message or a message_template")
    model = r.string(doc["model"], f"{path}.model", non_empty=True) if "model" in doc else None
    finish = r.string(doc["finish_reason"], f"{path}.finish_reason", non_empty=True) if "finish_reason" in doc else None
    usage = _usage(r, doc["usage"], f"{path}.usage") if "usage" in doc else None
    custom: Mapping[str, Any] | None = None
    if "custom_fields" in doc:
        custom = doc["custom_fields"]
        if not isinstance(custom, Mapping) or not all(isinstance(key, str) for key in custom):
            r.fail(f"{path}.custom_fields", "must be a mapping with string keys")
            custom = None
    if template is None:
        return None
    return ResponseSpec(SUCCESS, weight, template, model, finish, usage, custom)


def _error(r: _Reader, response: Mapping[str, Any], path: str, weight: float) -> ResponseSpec | None:
    allow = r.boolean(response["allow_fallbacks"], f"{path}.allow_fallbacks") if "allow_fallbacks" in response else True
    if "error" not in response:
        r.fail(f"{path}.error", "is required for an error response")
        return None
    path = f"{path}.error"
    doc = r.mapping(response["error"], path, ("message", "type", "code", "status_code"))
    if doc is None:
        return None
    message = r.string(doc["message"], f"{path}.message", non_empty=True) if "message" in doc else None
    if "message" not in doc:
        r.fail(f"{path}.message", "is required")
    kind = r.string(doc["type"], f"{path}.type", non_empty=True) if "type" in doc else None
    code: str | None = None
    if "code" in doc:
        # YAML reads `code: 503` as a number; the wire field is a string either way.
        raw = doc["code"]
        code = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else r.string(raw, f"{path}.code")
    status = r.integer(doc["status_code"], f"{path}.status_code", low=100, high=599) if "status_code" in doc else None
    if message is None or ("status_code" in doc and status is None) or allow is None:
        return None
    spec = ErrorSpec(message, kind, code, DEFAULT_ERROR_STATUS if status is None else status)
    return ResponseSpec(ERROR, weight, error=spec, allow_fallbacks=allow)


def _response(r: _Reader, value: Any, path: str) -> ResponseSpec | None:
    doc = r.mapping(value, path, ("type", "weight", "content", "error", "allow_fallbacks"))
    if doc is None:
        return None
    weight = r.number(doc["weight"], f"{path}.weight") if "weight" in doc else 1.0
    if weight is not None and weight <= 0:
        r.fail(f"{path}.weight", "must be > 0")
        weight = None
    if "type" not in doc:
        r.fail(f"{path}.type", f"is required ({', '.join(RESPONSE_TYPES)})")
        return None
    kind = r.string(doc["type"], f"{path}.type", choices=RESPONSE_TYPES)
    for field, owner in (("content", SUCCESS), ("error", ERROR), ("allow_fallbacks", ERROR)):
        if kind is not None and kind != owner and field in doc:
            r.fail(f"{path}.{field}", f"only an {owner} response has {field}")
    if kind == SUCCESS:
        spec = _success(r, doc, path, weight or 1.0)
    elif kind == ERROR:
        spec = _error(r, doc, path, weight or 1.0)
    else:
        spec = ResponseSpec(PASSTHROUGH, weight or 1.0)
    return None if weight is None else spec


def _rule(r: _Reader, value: Any, path: str) -> Rule | None:
    fields = ("name", "enabled", "priority", "probability", "conditions", "responses", "latency")
    doc = r.mapping(value, path, fields)
    if doc is None:
        return None
    name = r.string(doc["name"], f"{path}.name", non_empty=True) if "name" in doc else None
    if "name" not in doc:
        r.fail(f"{path}.name", "is required")
    enabled = r.boolean(doc["enabled"], f"{path}.enabled") if "enabled" in doc else True
    priority = r.integer(doc["priority"], f"{path}.priority") if "priority" in doc else 0
    probability = r.number(doc["probability"], f"{path}.probability", low=0, high=1) if "probability" in doc else 1.0
    conditions = _conditions(r, doc["conditions"], f"{path}.conditions") if "conditions" in doc else Conditions()
    latency = _latency(r, doc["latency"], f"{path}.latency") if "latency" in doc else None
    responses: list[ResponseSpec | None] = []
    if "responses" not in doc:
        r.fail(f"{path}.responses", "is required (at least one response)")
    else:
        items = r.sequence(doc["responses"], f"{path}.responses")
        if items is not None and not items:
            r.fail(f"{path}.responses", "needs at least one response")
        responses = [_response(r, item, f"{path}.responses[{i}]") for i, item in enumerate(items or ())]
    good = tuple(response for response in responses if response is not None)
    latency_bad = "latency" in doc and latency is None
    if name is None or enabled is None or priority is None or probability is None or conditions is None:
        return None
    if latency_bad or not good or len(good) != len(responses):
        return None
    cum_weights = tuple(itertools.accumulate(response.weight for response in good))
    return Rule(name, enabled, priority, probability, conditions, good, cum_weights, latency)


def load_spec(document: Any, *, path: str = "mocker") -> MockerSpec:
    """Validate and compile a mocker section; raise :class:`MockerConfigError` listing every problem."""
    if document is None or (isinstance(document, Mapping) and not document):
        return MockerSpec(enabled=False, default_behavior=SUCCESS, global_latency=None, rules=(), rule_names=())
    r = _Reader()
    doc = r.mapping(document, path, ("enabled", "default_behavior", "global_latency", "rules"))
    if doc is None:
        raise MockerConfigError(r.errors)
    enabled = r.boolean(doc["enabled"], f"{path}.enabled") if "enabled" in doc else True
    default = (
        r.string(doc["default_behavior"], f"{path}.default_behavior", choices=DEFAULT_BEHAVIORS)
        if "default_behavior" in doc
        else SUCCESS
    )
    latency = _latency(r, doc["global_latency"], f"{path}.global_latency") if "global_latency" in doc else None
    rules: list[Rule] = []
    first_seen: dict[str, int] = {}
    items = r.sequence(doc["rules"], f"{path}.rules") if "rules" in doc else []
    for index, item in enumerate(items or ()):
        rule_path = f"{path}.rules[{index}]"
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name:
            if name in first_seen:
                r.fail(f"{rule_path}.name", f"duplicate rule name {name!r} (first at rules[{first_seen[name]}])")
            else:
                first_seen[name] = index
        rule = _rule(r, item, rule_path)
        if rule is not None:
            rules.append(rule)
    if r.errors or enabled is None or default is None:
        raise MockerConfigError(r.errors)
    # sorted() is stable, so rules of equal priority keep their file order.
    ordered = tuple(sorted((rule for rule in rules if rule.enabled), key=lambda rule: -rule.priority))
    names = tuple(rule.name for rule in rules)
    return MockerSpec(enabled, default, latency, ordered, names)
