"""Anthropic Messages requests: a decoded body checked in the API's own words, reduced to what a reply needs.

Theory of operation: :func:`parse_messages_request` (and
:func:`parse_count_tokens_request`, which takes the same fields less
``max_tokens`` and sampling) checks a body field by field, in the pydantic
style of :mod:`sim.anthropic_content` (``thinking.enabled.budget_tokens:
Input should be greater than or equal to 1024``), plus the API's cross-field
rules worded as the API words them (the thinking budget against
``max_tokens``, thinking against forced tool use and temperature). Unknown
top-level fields are refused, as the API refuses them. The result is a frozen
:class:`MessagesRequest`: the limits, the tool plan for :mod:`sim.tools`, the
thinking settings, an output JSON schema if any, and the prompt text a reply
is written for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sim.anthropic_content import (
    blocks_of,
    check_messages,
    check_system,
    invalid,
    is_number,
    literal_error,
    message_text,
    require_dict,
    require_int,
    require_list,
    require_str,
    tag_error,
)
from sim.errors import ApiError
from sim.tools import Tool, ToolPlan

ThinkingMode = Literal["disabled", "enabled", "adaptive", "between_tools"]

MIN_THINKING_BUDGET_TOKENS = 1024
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
SERVICE_TIERS = ("auto", "standard_only")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
TEMPERATURE_DOCS = "https://platform.claude.com/docs/en/build-with-claude/extended-thinking"
SCHEMA_INVALID = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12). "
    "Learn more about tool use at https://docs.claude.com/en/docs/tool-use."
)

# Body fields of the create endpoint: those of the SDK's (beta) create params,
# plus the sampling parameters that older clients still send.
MESSAGES_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "stream", "temperature", "top_p", "top_k",
        "metadata", "service_tier", "tools", "tool_choice", "thinking", "cache_control", "container", "diagnostics",
        "inference_geo", "output_config", "output_format", "speed", "context_management", "mcp_servers",
        "billing_policy", "compaction", "fallback_credit_token", "fallbacks", "thread",
    }
)  # fmt: skip
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
        "output_format", "speed", "context_management", "mcp_servers",
    }
)  # fmt: skip

# Largest max_tokens per model family, as the API enforces them (longest prefix
# wins). Models not listed (newer ones) are not limited here.
MAX_OUTPUT_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-3-haiku", 4096),
    ("claude-3-opus", 4096),
    ("claude-3-5-haiku", 8192),
    ("claude-3-5-sonnet", 8192),
    ("claude-3-7-sonnet", 64000),
    ("claude-sonnet-4-0", 64000),
    ("claude-sonnet-4-2", 64000),  # claude-sonnet-4-20250514
    ("claude-opus-4-0", 32000),
    ("claude-opus-4-1", 32000),
    ("claude-opus-4-2", 32000),  # claude-opus-4-20250514
    ("claude-sonnet-4-5", 64000),
    ("claude-haiku-4-5", 64000),
    ("claude-opus-4-5", 64000),
    ("claude-sonnet-4-6", 64000),
    ("claude-opus-4-6", 128000),
)


@dataclass(frozen=True, slots=True)
class Thinking:
    """The request's ``thinking`` setting; ``display`` is ``summarized`` or ``omitted``."""

    mode: ThinkingMode = "disabled"
    budget_tokens: int | None = None
    display: str = "summarized"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """What the simulator needs from a Messages (or count_tokens) request.

    ``max_tokens`` is 0 for count_tokens requests, which have none. ``prompt``
    is the text of the last user message; ``after_tool_result`` says whether
    that message carries ``tool_result`` blocks.
    """

    model: str
    max_tokens: int
    messages: tuple[Mapping[str, Any], ...]
    system: str | tuple[Mapping[str, Any], ...]
    stop_sequences: tuple[str, ...]
    stream: bool
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: str
    tool_plan: ToolPlan
    thinking: Thinking
    output_schema: Mapping[str, Any] | None
    prompt: str
    after_tool_result: bool


def _check_tools(value: Any) -> tuple[tuple[Mapping[str, Any], ...], tuple[Tool, ...]]:
    """All tool definitions (for counting) and the client tools among them (for calls)."""
    if value is None:
        return (), ()
    definitions = require_list(value, "tools")
    tools: list[Tool] = []
    names: set[str] = set()
    for index, definition in enumerate(definitions):
        require_dict(definition, f"tools.{index}")
        kind = definition.get("type")
        name = definition.get("name")
        if kind is not None and kind != "custom":
            # Server tools (web search, code execution, …) run at the provider: no tool_use for the client.
            if isinstance(name, str):
                if name in names:
                    raise invalid("tools", "Tool names must be unique.")
                names.add(name)
            continue
        location = f"tools.{index}.custom"
        name = require_str(name, f"{location}.name")
        if not TOOL_NAME.fullmatch(name):
            raise invalid(f"{location}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
        schema = require_dict(definition.get("input_schema"), f"{location}.input_schema")
        if any(key in schema for key in ("oneOf", "allOf", "anyOf")):
            raise invalid(
                f"{location}.input_schema", "input_schema does not support oneOf, allOf, or anyOf at the top level"
            )
        if schema.get("type") != "object":
            raise literal_error(f"{location}.input_schema.type", ("object",))
        if name in names:
            raise invalid("tools", "Tool names must be unique.")
        names.add(name)
        tools.append(Tool(name, schema))
    return tuple(definitions), tuple(tools)


def _check_tool_choice(value: Any, tools: tuple[Tool, ...], names: set[str]) -> tuple[str, ToolPlan]:
    if value is None:
        return "auto", ToolPlan(tools, "auto")
    choice = require_dict(value, "tool_choice")
    kind = choice.get("type")
    if kind not in TOOL_CHOICE_TYPES:
        if not isinstance(kind, str):
            raise invalid("tool_choice", "Unable to extract tag using discriminator 'type'")
        raise tag_error("tool_choice", kind, TOOL_CHOICE_TYPES)
    single = choice.get("disable_parallel_tool_use", False)
    if not isinstance(single, bool):
        raise invalid(f"tool_choice.{kind}.disable_parallel_tool_use", "Input should be a valid boolean")
    if kind == "none":
        return kind, ToolPlan(tools, "none")
    if kind == "auto":
        return kind, ToolPlan(tools, "auto", parallel=not single)
    forced = None
    if kind == "tool":
        forced = require_str(choice.get("name"), "tool_choice.tool.name")
        if forced not in names:
            raise invalid("tool_choice.tool.name", f"Tool '{forced}' not found in provided tools")
    return kind, ToolPlan(tools, "required", forced=forced, parallel=not single)


def _check_thinking(value: Any) -> Thinking:
    if value is None:
        return Thinking()
    thinking = require_dict(value, "thinking")
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        if not isinstance(kind, str):
            raise invalid("thinking", "Unable to extract tag using discriminator 'type'")
        raise tag_error("thinking", kind, THINKING_TYPES)
    display = thinking.get("display") or "summarized"
    if display not in ("summarized", "omitted"):
        raise literal_error(f"thinking.{kind}.display", ("summarized", "omitted"))
    if kind == "enabled":
        budget = require_int(
            thinking.get("budget_tokens"), "thinking.enabled.budget_tokens", minimum=MIN_THINKING_BUDGET_TOKENS
        )
        return Thinking("enabled", budget, display)
    mode: ThinkingMode = (
        "adaptive" if kind == "adaptive" else "between_tools" if kind == "between_tools" else "disabled"
    )
    return Thinking(mode, None, display)


def _check_sampling(body: Mapping[str, Any], thinking: Thinking) -> None:
    for param, maximum in (("temperature", 1), ("top_p", 1)):
        value = body.get(param)
        if value is None:
            continue
        if not is_number(value):
            raise invalid(param, "Input should be a valid number")
        if value < 0:
            raise invalid(param, "Input should be greater than or equal to 0")
        if value > maximum:
            raise invalid(param, f"Input should be less than or equal to {maximum}")
    top_k = body.get("top_k")
    if top_k is not None:
        require_int(top_k, "top_k", minimum=0)
    temperature = body.get("temperature")
    if thinking.mode in ("enabled", "adaptive") and temperature is not None and temperature != 1:
        raise ApiError(
            400,
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. "
            f"Please consult our documentation at {TEMPERATURE_DOCS}",
        )


def _check_output_schema(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    config = require_dict(value, "output_config")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise literal_error("output_config.effort", ("low", "medium", "high", "xhigh", "max"))
    form = config.get("format")
    if form is None:
        return None
    require_dict(form, "output_config.format")
    if form.get("type") != "json_schema":
        raise literal_error("output_config.format.type", ("json_schema",))
    return require_dict(form.get("schema"), "output_config.format.schema")


def _check_extra(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(key, "Extra inputs are not permitted")


def max_output_tokens(model: str) -> int | None:
    """The largest ``max_tokens`` the API accepts for ``model``, when known."""
    best, limit = "", None
    for prefix, candidate in MAX_OUTPUT_TOKENS:
        if model.startswith(prefix) and len(prefix) > len(best):
            best, limit = prefix, candidate
    return limit


def _common(body: Any, *, allowed: frozenset[str]) -> tuple[Mapping[str, Any], str, tuple[Mapping[str, Any], ...]]:
    if not isinstance(body, dict):
        raise invalid("", "Input should be a valid dictionary or object to extract fields from")
    model = require_str(body.get("model"), "model")
    messages = check_messages(body.get("messages"))
    _check_extra(body, allowed)
    return body, model, messages


def parse_messages_request(body: Any) -> MessagesRequest:
    """Validate a decoded ``POST /v1/messages`` body; raise :class:`ApiError` (400) as the API would."""
    if isinstance(body, dict) and "max_tokens" not in body:
        raise invalid("max_tokens", "Field required")
    body, model, messages = _common(body, allowed=MESSAGES_FIELDS)
    max_tokens = require_int(body["max_tokens"], "max_tokens", minimum=0)
    limit = max_output_tokens(model)
    if limit is not None and max_tokens > limit:
        raise invalid(
            "max_tokens", f"{max_tokens} > {limit}, which is the maximum allowed number of output tokens for {model}"
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("stream", "Input should be a valid boolean")
    stops = body.get("stop_sequences")
    stop_sequences: tuple[str, ...] = ()
    if stops is not None:
        stop_sequences = tuple(
            require_str(item, f"stop_sequences.{i}") for i, item in enumerate(require_list(stops, "stop_sequences"))
        )
    metadata = body.get("metadata")
    if metadata is not None:
        require_dict(metadata, "metadata")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise literal_error("service_tier", SERVICE_TIERS)
    request = _build(body, model, messages, max_tokens=max_tokens, stream=stream, stop_sequences=stop_sequences)
    thinking = request.thinking
    if thinking.budget_tokens is not None and thinking.budget_tokens >= max_tokens:
        raise ApiError(
            400,
            "`max_tokens` must be greater than `thinking.budget_tokens`. "
            f"Please consult our documentation at {THINKING_DOCS}",
        )
    _check_sampling(body, thinking)
    return request


def parse_count_tokens_request(body: Any) -> MessagesRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body: the create fields less max_tokens and sampling."""
    body, model, messages = _common(body, allowed=COUNT_TOKENS_FIELDS)
    return _build(body, model, messages, max_tokens=0, stream=False, stop_sequences=())


def _build(
    body: Mapping[str, Any],
    model: str,
    messages: tuple[Mapping[str, Any], ...],
    *,
    max_tokens: int,
    stream: bool,
    stop_sequences: tuple[str, ...],
) -> MessagesRequest:
    system = check_system(body.get("system"))
    definitions, tools = _check_tools(body.get("tools"))
    names = {d["name"] for d in definitions if isinstance(d.get("name"), str)}
    tool_choice, plan = _check_tool_choice(body.get("tool_choice"), tools, names)
    thinking = _check_thinking(body.get("thinking"))
    if thinking.mode in ("enabled", "adaptive") and tool_choice in ("any", "tool"):
        raise ApiError(400, "Thinking may not be enabled when tool_choice forces tool use.")
    output_schema = _check_output_schema(body.get("output_config"))
    last_user = next((m for m in reversed(messages) if m["role"] == "user"), None)
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=system,
        stop_sequences=stop_sequences,
        stream=stream,
        tools=definitions,
        tool_choice=tool_choice,
        tool_plan=plan,
        thinking=thinking,
        output_schema=output_schema,
        prompt=message_text(last_user) if last_user else "",
        after_tool_result=last_user is not None and bool(blocks_of(last_user, "tool_result")),
    )
