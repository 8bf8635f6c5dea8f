"""OpenAI Responses requests (``POST /v1/responses``), read from the wire and validated as the API does.

Parsing answers with the API's own 400s (message, ``param``, ``code``). The
result is a frozen :class:`ResponsesRequest`: what the simulator acts on (the
conversation as chat messages for token counting, the last user text, the tool
plan, the output schema) and every setting the API repeats back in the
Response object, already in the form it repeats them (defaults filled in).

Function tools follow the Responses API's strict-mode rule: ``strict: true``
refuses a schema strict mode cannot take, an omitted ``strict`` adopts strict
mode when the schema can be normalised to it (see :mod:`sim.strict_schema`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim import params
from sim.chat_request import JSON_OBJECT_SCHEMA
from sim.errors import ApiError
from sim.responses_input import not_one_of, read_input, required_str, text_of
from sim.strict_schema import strict_normalized, strict_problem
from sim.tools import Tool, ToolPlan

MIN_OUTPUT_TOKENS = 16
MAX_OUTPUT_TOKENS = 131_072
MAX_TOP_LOGPROBS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# Reasoning models report a default effort; others report none.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """What the simulator needs from a Responses request, and what the Response repeats of it."""

    model: str
    messages: tuple[Mapping[str, Any], ...]  # the conversation as chat messages, instructions first
    prompt: str  # the last user text (echo mode repeats it)
    after_tool_result: bool
    plan: ToolPlan
    output_schema: Mapping[str, Any] | None  # text.format json_object / json_schema
    stream: bool = False
    obfuscate: bool = True
    max_output_tokens: int | None = None
    instructions: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_logprobs: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    store: bool = True
    background: bool = False
    previous_response_id: str | None = None
    reasoning: Mapping[str, Any] = field(default_factory=lambda: {"effort": None, "summary": None})
    text: Mapping[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}, "verbosity": "medium"})
    truncation: str = "disabled"
    service_tier: str = "default"
    user: str | None = None
    max_tool_calls: int | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None


def _function_tool(tool: Mapping[str, Any], param: str) -> tuple[Tool, dict[str, Any]]:
    name = tool.get("name")
    if name is None:
        raise params.missing(f"{param}.name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise params.invalid_value(
            f"{param}.name",
            f"Invalid '{param}.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        )
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise params.invalid_type(f"{param}.description", "a string", description)
    schema = tool.get("parameters")
    if schema is not None and not isinstance(schema, dict):
        raise params.invalid_type(f"{param}.parameters", "an object", schema)
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise params.invalid_type(f"{param}.strict", "a boolean", strict)
    used: Mapping[str, Any] = schema if schema is not None else _EMPTY_PARAMETERS
    if strict:
        problem = strict_problem(used)
        if problem:
            raise ApiError(
                400,
                f"Invalid schema for function '{name}': {problem}",
                param=f"{param}.parameters",
                code="invalid_function_parameters",
            )
    elif strict is None:
        normalized = strict_normalized(used)
        strict = normalized is not None
        if normalized is not None:
            used = schema = normalized
    echo = {"type": "function", "description": description, "name": name, "parameters": schema, "strict": strict}
    return Tool(name, used), echo


def _tools(body: Mapping[str, Any]) -> tuple[list[Tool], list[Mapping[str, Any]]]:
    raw = body.get("tools")
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise params.invalid_type("tools", "an array", raw)
    functions: list[Tool] = []
    echoed: list[Mapping[str, Any]] = []
    for index, tool in enumerate(raw):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise params.invalid_type(param, "an object", tool)
        if tool.get("type") is None:
            raise params.missing(f"{param}.type")
        if tool["type"] != "function":
            echoed.append(tool)  # hosted and custom tools are accepted and repeated, never called
            continue
        function, echo = _function_tool(tool, param)
        functions.append(function)
        echoed.append(echo)
    return functions, echoed


def _tool_plan(body: Mapping[str, Any], tools: list[Tool]) -> tuple[ToolPlan, Any]:
    """The plan the simulator follows, and ``tool_choice`` as the Response repeats it."""
    parallel = params.optional_bool(body, "parallel_tool_calls", default=True)
    choice = body.get("tool_choice")
    names = {tool.name for tool in tools}
    if choice is None:
        return ToolPlan(tuple(tools), "auto", None, parallel), "auto"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise not_one_of("tool_choice", choice, ("none", "auto", "required"))
        return ToolPlan(tuple(tools), choice, None, parallel), choice
    if not isinstance(choice, dict):
        raise params.invalid_type("tool_choice", "one of a string or object", choice)
    kind = choice.get("type")
    if kind is None:
        raise params.missing("tool_choice.type")
    if kind == "function":
        name = required_str(choice, "name", "tool_choice")
        if name not in names:
            raise params.invalid_value("tool_choice", f"Tool choice '{kind}' not found in 'tools' parameter.")
        return ToolPlan(tuple(tools), "required", name, parallel), {"type": "function", "name": name}
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise not_one_of("tool_choice.mode", mode, ("auto", "required"))
        allowed = choice.get("tools")
        listed = {t.get("name") for t in allowed if isinstance(t, dict)} if isinstance(allowed, list) else set()
        subset = tuple(tool for tool in tools if tool.name in listed)
        return ToolPlan(subset, mode, None, parallel), choice
    # A hosted tool forced by type (file_search, ...): nothing the simulator can call.
    offered = body.get("tools") or []
    if not any(isinstance(tool, dict) and tool.get("type") == kind for tool in offered):
        raise params.invalid_value("tool_choice", f"Tool choice '{kind}' not found in 'tools' parameter.")
    return ToolPlan((), "none", None, parallel), choice


def _text(body: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, Any] | None]:
    """``text`` as the Response repeats it, and the schema the output must follow (if any)."""
    text = body.get("text")
    if text is None:
        text = {}
    if not isinstance(text, dict):
        raise params.invalid_type("text", "an object", text)
    verbosity = text.get("verbosity") or "medium"
    if verbosity not in ("low", "medium", "high"):
        raise not_one_of("text.verbosity", verbosity, ("low", "medium", "high"))
    spec = text.get("format")
    if spec is None:
        return {"format": {"type": "text"}, "verbosity": verbosity}, None
    if not isinstance(spec, dict):
        raise params.invalid_type("text.format", "an object", spec)
    kind = spec.get("type")
    if kind is None:
        raise params.missing("text.format.type")
    if kind == "text":
        return {"format": {"type": "text"}, "verbosity": verbosity}, None
    if kind == "json_object":
        return {"format": {"type": "json_object"}, "verbosity": verbosity}, JSON_OBJECT_SCHEMA
    if kind != "json_schema":
        raise not_one_of("text.format.type", kind, ("text", "json_object", "json_schema"))
    name = required_str(spec, "name", "text.format")
    schema = spec.get("schema")
    if schema is None:
        raise params.missing("text.format.schema")
    if not isinstance(schema, dict):
        raise params.invalid_type("text.format.schema", "an object", schema)
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise params.invalid_type("text.format.strict", "a boolean", strict)
    if strict:
        problem = strict_problem(schema)
        if problem:
            raise ApiError(
                400,
                f"Invalid schema for response_format '{name}': {problem}",
                param="text.format.schema",
                code="invalid_json_schema",
            )
    echo = {"type": "json_schema", "name": name, "schema": schema, "strict": bool(strict)}
    description = spec.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise params.invalid_type("text.format.description", "a string", description)
        echo["description"] = description
    return {"format": echo, "verbosity": verbosity}, schema


def _out_of_range(param: str, value: float, *, above: bool, bound: float) -> ApiError:
    side, limit, sign = ("above", "maximum", "<=") if above else ("below", "minimum", ">=")
    return ApiError(
        400,
        f"Invalid '{param}': decimal {side} {limit} value. Expected a value {sign} {bound:g}, "
        f"but got {value:g} instead.",
        param=param,
        code=f"decimal_{side}_{limit[:3]}_value",
    )


def _number(body: Mapping[str, Any], param: str, *, default: float, maximum: float) -> float:
    value = body.get(param)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise params.invalid_type(param, "a decimal", value)
    if value < 0:
        raise _out_of_range(param, value, above=False, bound=0)
    if value > maximum:
        raise _out_of_range(param, value, above=True, bound=maximum)
    return float(value)


def _metadata(body: Mapping[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise params.invalid_type("metadata", "an object", metadata)
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ApiError(
            400,
            f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(metadata)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise params.invalid_value(
                "metadata",
                f"Invalid 'metadata': key too long. Expected a key with maximum length {MAX_METADATA_KEY_CHARS}, "
                f"but got a key with length {len(key)} instead.",
            )
        if not isinstance(value, str):
            raise params.invalid_type(f"metadata.{key}", "a string", value)
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise params.invalid_value(
                f"metadata.{key}",
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length "
                f"{MAX_METADATA_VALUE_CHARS}, but got a string with length {len(value)} instead.",
            )
    return metadata


def _reasoning(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    reasoning = body.get("reasoning")
    if reasoning is None:
        reasoning = {}
    if not isinstance(reasoning, dict):
        raise params.invalid_type("reasoning", "an object", reasoning)
    default = "medium" if model.startswith(_REASONING_PREFIXES) else None
    return {"effort": reasoning.get("effort", default), "summary": reasoning.get("summary")}


def _choice_of(body: Mapping[str, Any], param: str, supported: tuple[str, ...], default: str) -> str:
    value = body.get(param)
    if value is None:
        return default
    if value not in supported:
        raise not_one_of(param, value, supported)
    return str(value)


def _stream_options(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return True
    if not isinstance(options, dict):
        raise params.invalid_type("stream_options", "an object", options)
    return options.get("include_obfuscation") is not False


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    body = params.require_object(body)
    model = body.get("model")
    if model is None:
        raise params.missing("model")
    if not isinstance(model, str):
        raise params.invalid_type("model", "a string", model)
    instructions = params.optional_str(body, "instructions")
    conversation, after_tool_result = read_input(body.get("input"))
    if instructions:
        conversation.insert(0, {"role": "developer", "content": instructions})
    functions, echoed_tools = _tools(body)
    plan, tool_choice = _tool_plan(body, functions)
    text, output_schema = _text(body)
    if (
        text["format"]["type"] == "json_object"
        and "json" not in " ".join(text_of(message.get("content")) for message in conversation).lower()
    ):
        raise params.invalid_value(
            "input",
            "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
            "'json_object'.",
        )
    prompt = next((text_of(m["content"]) for m in reversed(conversation) if m.get("role") == "user"), "")
    service_tier = _choice_of(body, "service_tier", ("auto", "default", "flex", "scale", "priority"), "auto")
    return ResponsesRequest(
        model=model,
        messages=tuple(conversation),
        prompt=prompt,
        after_tool_result=after_tool_result,
        plan=plan,
        output_schema=output_schema,
        stream=params.optional_bool(body, "stream"),
        obfuscate=_stream_options(body),
        max_output_tokens=params.optional_int(
            body, "max_output_tokens", minimum=MIN_OUTPUT_TOKENS, maximum=MAX_OUTPUT_TOKENS
        ),
        instructions=instructions,
        tools=tuple(echoed_tools),
        tool_choice=tool_choice,
        parallel_tool_calls=plan.parallel,
        temperature=_number(body, "temperature", default=1.0, maximum=2),
        top_p=_number(body, "top_p", default=1.0, maximum=1),
        top_logprobs=params.optional_int(body, "top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS) or 0,
        metadata=_metadata(body),
        store=params.optional_bool(body, "store", default=True),
        background=params.optional_bool(body, "background"),
        previous_response_id=params.optional_str(body, "previous_response_id"),
        reasoning=_reasoning(body, model),
        text=text,
        truncation=_choice_of(body, "truncation", ("auto", "disabled"), "disabled"),
        service_tier="default" if service_tier == "auto" else service_tier,
        user=params.optional_str(body, "user"),
        max_tool_calls=params.optional_int(body, "max_tool_calls", minimum=1, maximum=MAX_OUTPUT_TOKENS),
        prompt_cache_key=params.optional_str(body, "prompt_cache_key"),
        prompt_cache_retention=params.optional_str(body, "prompt_cache_retention"),
        safety_identifier=params.optional_str(body, "safety_identifier"),
    )
