"""OpenAI chat completion requests, read from the wire and validated as the API does.

Parsing follows the API's own validation messages (type, param and code), so a
client sees the error it would see from OpenAI. The result is a frozen
:class:`ChatRequest` holding only what the simulator acts on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sim import params
from sim.errors import ApiError
from sim.tools import Tool, ToolPlan

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
MAX_CHOICES = 128
MAX_OUTPUT_TOKENS = 131_072
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20
MAX_TOOLS = 128
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# json_object mode answers with an object of this shape (any object is valid there).
JSON_OBJECT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "title": {"type": "string", "maxLength": 60},
        "summary": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
    },
    "required": ["id", "title", "summary", "score", "tags"],
    "additionalProperties": False,
}


NO_TOOLS = ToolPlan()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the simulator needs from a chat completion request."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    n: int
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    tools: ToolPlan = NO_TOOLS
    raw_tools: Sequence[Mapping[str, Any]] = ()
    json_schema: Mapping[str, Any] | None = None  # response_format json_object / json_schema
    exact_length: bool = False  # vLLM's ignore_eos: the reply is max_tokens long
    body: Mapping[str, Any] | None = None  # the request as sent (for seeding)

    @property
    def after_tool_result(self) -> bool:
        return bool(self.messages) and self.messages[-1].get("role") in ("tool", "function")


def _check_messages(messages: Any) -> Sequence[Mapping[str, Any]]:
    if messages is None:
        raise params.missing("messages")
    if not isinstance(messages, list):
        raise params.invalid_type("messages", "an array", messages)
    if not messages:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise params.invalid_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise params.missing(f"messages[{index}].role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES[:-1]) + f", and '{ROLES[-1]}'"
            raise params.invalid_value(
                f"messages[{index}].role",
                f"Invalid value: {orjson.dumps(role).decode()}. Supported values are: {supported}.",
            )
    return messages


def _tools(body: Mapping[str, Any]) -> tuple[ToolPlan, Sequence[Mapping[str, Any]]]:
    raw = body.get("tools")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise params.invalid_type("tools", "an array", raw)
    if len(raw) > MAX_TOOLS:
        raise params.array_too_long("tools", MAX_TOOLS, len(raw))
    tools = []
    for index, tool in enumerate(raw):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise params.invalid_type(param, "an object", tool)
        if tool.get("type") != "function":
            if tool.get("type") is None:
                raise params.missing(f"{param}.type")
            continue  # custom and hosted tools are accepted; the simulator only calls functions
        function = tool.get("function")
        if not isinstance(function, dict):
            raise (
                params.missing(f"{param}.function")
                if function is None
                else params.invalid_type(f"{param}.function", "an object", function)
            )
        name = function.get("name")
        if name is None:
            raise params.missing(f"{param}.function.name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise params.invalid_value(
                f"{param}.function.name",
                f"Invalid '{param}.function.name': string does not match pattern. "
                f"Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            )
        schema = function.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise params.invalid_type(f"{param}.function.parameters", "an object", schema)
        tools.append(Tool(name, schema))
    names = {tool.name for tool in tools}
    mode, forced = _tool_choice(body.get("tool_choice"), names, has_tools=bool(raw))
    parallel = params.optional_bool(body, "parallel_tool_calls", default=True)
    return ToolPlan(tuple(tools), mode, forced, parallel), raw


def _tool_choice(choice: Any, names: set[str], *, has_tools: bool) -> tuple[str, str | None]:
    if choice is None:
        return "auto", None
    if not has_tools:
        raise params.invalid_value(
            "tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
        )
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise params.invalid_value(
                "tool_choice",
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
            )
        return choice, None
    if not isinstance(choice, dict):
        raise params.invalid_type("tool_choice", "a string or an object", choice)
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise params.missing("tool_choice.function.name")
    if name not in names:
        raise params.invalid_value(
            "tool_choice",
            f"Invalid value for 'tool_choice': tool choice '{name}' not found in 'tools' parameter.",
        )
    return "required", name


def _response_format(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec = body.get("response_format")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise params.invalid_type("response_format", "an object", spec)
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT_SCHEMA
    if kind == "json_schema":
        definition = spec.get("json_schema")
        if not isinstance(definition, dict):
            raise params.missing("response_format.json_schema")
        if not isinstance(definition.get("name"), str):
            raise params.missing("response_format.json_schema.name")
        schema = definition.get("schema", {})
        if not isinstance(schema, dict):
            raise params.invalid_type("response_format.json_schema.schema", "an object", schema)
        return schema
    raise params.invalid_value(
        "response_format.type",
        f"Invalid value: {orjson.dumps(kind).decode()}. "
        "Supported values are: 'text', 'json_object', and 'json_schema'.",
    )


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    body = params.require_object(body)
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(400, "you must provide a model parameter")
    if not isinstance(model, str):
        raise params.invalid_type("model", "a string", model)
    messages = _check_messages(body.get("messages"))
    stream = params.optional_bool(body, "stream")
    include_usage = params.include_usage(body, stream=stream)
    limits = {
        param: params.optional_int(body, param, minimum=1, maximum=MAX_OUTPUT_TOKENS)
        for param in ("max_completion_tokens", "max_tokens")
    }
    logprobs = params.optional_bool(body, "logprobs")
    top_logprobs = params.optional_int(body, "top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise params.invalid_value(
            "top_logprobs",
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when using 'top_logprobs'.",
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise params.invalid_type("seed", "an integer", seed)
    plan, raw_tools = _tools(body)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=limits["max_completion_tokens"] or limits["max_tokens"],
        n=params.optional_int(body, "n", minimum=1, maximum=MAX_CHOICES) or 1,
        stop=params.stop_sequences(body, "stop", limit=MAX_STOP_SEQUENCES),
        logprobs=logprobs,
        top_logprobs=top_logprobs or 0,
        tools=plan,
        raw_tools=raw_tools,
        json_schema=_response_format(body),
        exact_length=params.optional_bool(body, "ignore_eos"),
        body=body,
    )


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one message's content (a string, or the text of its parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """What echo mode repeats: the last user message's text."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""
