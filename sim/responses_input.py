"""The ``input`` of a Responses request: its items checked as the API checks them, read as chat messages.

The Responses API takes a string or a list of items: messages (with string or
part-list content), the model's earlier ``function_call`` items and the
client's ``function_call_output`` items, and items the simulator only passes
over (reasoning, item references, hosted tool calls). :func:`read_input`
validates them with OpenAI's 400s and turns the conversation into chat
messages, the form :func:`sim.tokens.count_chat_prompt` counts: a function call
is an assistant message with ``tool_calls``, its output a ``tool`` message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim import params
from sim.errors import ApiError

ROLES = ("assistant", "system", "developer", "user")
PART_TYPES = (
    "input_text",
    "input_image",
    "output_text",
    "refusal",
    "input_file",
    "computer_screenshot",
    "summary_text",
)
ITEM_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "custom_tool_call",
    "custom_tool_call_output",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "file_search_call",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
)


def _list_words(values: tuple[str, ...]) -> str:
    """``'a', 'b', and 'c'``, as OpenAI lists supported values."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def not_one_of(param: str, value: Any, supported: tuple[str, ...]) -> ApiError:
    return params.invalid_value(param, f"Invalid value: '{value}'. Supported values are: {_list_words(supported)}.")


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _check_parts(content: list[Any], param: str, role: str) -> None:
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise params.invalid_type(where, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise params.missing(f"{where}.type")
        if kind not in PART_TYPES:
            raise not_one_of(where, kind, PART_TYPES)
        if role == "assistant" and kind not in ("output_text", "refusal"):
            raise not_one_of(where, kind, ("output_text", "refusal"))
        if kind in ("input_text", "output_text"):
            text = part.get("text")
            if text is None:
                raise params.missing(f"{where}.text")
            if not isinstance(text, str):
                raise params.invalid_type(f"{where}.text", "a string", text)


def _message(item: Mapping[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role is None:
        raise params.missing(f"{param}.role")
    if role not in ROLES:
        raise not_one_of(f"{param}.role", role, ROLES)
    content = item.get("content")
    if content is None:
        raise params.missing(f"{param}.content")
    if isinstance(content, list):
        _check_parts(content, f"{param}.content", role)
    elif not isinstance(content, str):
        raise params.invalid_type(f"{param}.content", "one of a string or array of objects", content)
    return {"role": role, "content": content}


def required_str(item: Mapping[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if value is None:
        raise params.missing(f"{param}.{key}")
    if not isinstance(value, str):
        raise params.invalid_type(f"{param}.{key}", "a string", value)
    return value


def read_input(value: Any) -> tuple[list[dict[str, Any]], bool]:
    """The input as chat messages (how its tokens are counted), and whether it ends with a tool result."""
    if value is None:
        return [], False
    if isinstance(value, str):
        return [{"role": "user", "content": value}], False
    if not isinstance(value, list):
        raise params.invalid_type("input", "one of a string or array of objects", value)
    messages: list[dict[str, Any]] = []
    last_type = None
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise params.invalid_type(param, "an object", item)
        kind = item.get("type", "message")
        if kind not in ITEM_TYPES:
            raise not_one_of(f"{param}.type", kind, ITEM_TYPES)
        last_type = kind
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            name = required_str(item, "name", param)
            arguments = required_str(item, "arguments", param)
            required_str(item, "call_id", param)
            messages.append({"role": "assistant", "tool_calls": [{"function": {"name": name, "arguments": arguments}}]})
        elif kind == "function_call_output":
            required_str(item, "call_id", param)
            output = item.get("output")
            if output is None:
                raise params.missing(f"{param}.output")
            if not isinstance(output, str | list):
                raise params.invalid_type(f"{param}.output", "one of a string or array of objects", output)
            messages.append({"role": "tool", "content": output})
        # Other items (reasoning, references, hosted tool calls) carry no text the simulator reads.
    return messages, last_type == "function_call_output"
