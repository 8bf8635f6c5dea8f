"""Anthropic message content: the ``messages`` and ``system`` checks, and the text a message says.

Theory of operation: the API validates bodies with pydantic and answers the
first failure as ``<location>: <pydantic message>``, the location being the
dotted path into the body, with a tagged union's tag inserted
(``messages.3.content.0.tool_use.input``). The helpers here produce errors in
that form for every Anthropic parser; the content checks add the API's own
rules that are not pydantic's (non-empty messages, no trailing whitespace in a
final assistant prefill, tool_use/tool_result pairing), worded as the API
words them. Content-block types the simulator does not read pass unchecked, so
newer clients keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sim.errors import ApiError

ROLES = ("user", "assistant", "system")


def invalid(location: str, message: str) -> ApiError:
    """A 400 worded as the API words it: ``<location>: <message>``."""
    return ApiError(400, f"{location}: {message}" if location else message, param=location or None)


def literal_error(location: str, choices: Sequence[str]) -> ApiError:
    quoted = [f"'{choice}'" for choice in choices]
    expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return invalid(location, f"Input should be {expected}")


def tag_error(location: str, tag: Any, tags: Sequence[str]) -> ApiError:
    expected = ", ".join(f"'{t}'" for t in tags)
    return invalid(
        location, f"Input tag '{tag}' found using 'type' does not match any of the expected tags: {expected}"
    )


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_int(value: Any, location: str, *, minimum: int) -> int:
    if value is None:
        raise invalid(location, "Field required")
    if not is_int(value):
        raise invalid(location, "Input should be a valid integer")
    if value < minimum:
        raise invalid(location, f"Input should be greater than or equal to {minimum}")
    return int(value)


def require_str(value: Any, location: str) -> str:
    if value is None:
        raise invalid(location, "Field required")
    if not isinstance(value, str):
        raise invalid(location, "Input should be a valid string")
    return value


def require_dict(value: Any, location: str) -> Mapping[str, Any]:
    if value is None:
        raise invalid(location, "Field required")
    if not isinstance(value, dict):
        raise invalid(location, "Input should be a valid dictionary")
    return value


def require_list(value: Any, location: str) -> list[Any]:
    if value is None:
        raise invalid(location, "Field required")
    if not isinstance(value, list):
        raise invalid(location, "Input should be a valid list")
    return value


def block_type(block: Any, location: str) -> str:
    if not isinstance(block, dict):
        raise invalid(location, "Input should be a valid dictionary")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid(location, "Unable to extract tag using discriminator 'type'")
    return kind


def _check_block(block: Mapping[str, Any], kind: str, location: str) -> None:
    """Checks the fields of the block types a reply depends on; other types pass as they are."""
    where = f"{location}.{kind}"
    if kind == "text":
        if require_str(block.get("text"), f"{where}.text") == "":
            raise invalid("messages", "text content blocks must be non-empty")
    elif kind == "tool_use":
        require_str(block.get("id"), f"{where}.id")
        require_str(block.get("name"), f"{where}.name")
        require_dict(block.get("input"), f"{where}.input")
    elif kind == "tool_result":
        require_str(block.get("tool_use_id"), f"{where}.tool_use_id")


def check_messages(value: Any) -> tuple[Mapping[str, Any], ...]:
    messages = require_list(value, "messages")
    if not messages:
        raise invalid("messages", "at least one message is required")
    for index, message in enumerate(messages):
        location = f"messages.{index}"
        require_dict(message, location)
        role = message.get("role")
        if role is None:
            raise invalid(f"{location}.role", "Field required")
        if role not in ROLES:
            raise literal_error(f"{location}.role", ROLES[:2])
        content = message.get("content")
        if content is None:
            raise invalid(f"{location}.content", "Field required")
        if isinstance(content, list):
            for position, block in enumerate(content):
                where = f"{location}.content.{position}"
                kind = block_type(block, where)
                if role == "system" and kind != "text":
                    raise literal_error(f"{where}.type", ("text",))
                _check_block(block, kind, where)
        elif not isinstance(content, str):
            raise invalid(f"{location}.content", "Input should be a valid list")
        final_assistant = index == len(messages) - 1 and role == "assistant"
        if not content and not final_assistant:
            raise invalid(
                location, "all messages must have non-empty content except for the optional final assistant message"
            )
    last = messages[-1]
    if last["role"] == "assistant" and message_text(last) != message_text(last).rstrip():
        raise invalid("messages", "final assistant content cannot end with trailing whitespace")
    _check_tool_pairing(messages)
    return tuple(messages)


def blocks_of(message: Mapping[str, Any], kind: str) -> list[tuple[int, Mapping[str, Any]]]:
    content = message["content"]
    if not isinstance(content, list):
        return []
    return [(position, block) for position, block in enumerate(content) if block["type"] == kind]


def _check_tool_pairing(messages: Sequence[Mapping[str, Any]]) -> None:
    """Every tool_use is answered in the next message; every tool_result answers the previous one."""
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and index + 1 < len(messages):
            answered = {block["tool_use_id"] for _, block in blocks_of(messages[index + 1], "tool_result")}
            missing = [block["id"] for _, block in blocks_of(message, "tool_use") if block["id"] not in answered]
            if missing:
                raise invalid(
                    f"messages.{index}",
                    f"`tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(missing)}. "
                    "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                )
        if message["role"] == "user":
            previous = messages[index - 1] if index > 0 else None
            asked = {block["id"] for _, block in blocks_of(previous, "tool_use")} if previous else set()
            for position, block in blocks_of(message, "tool_result"):
                if block["tool_use_id"] not in asked:
                    raise invalid(
                        f"messages.{index}.content.{position}",
                        f"unexpected `tool_use_id` found in `tool_result` blocks: {block['tool_use_id']}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    )


def check_system(value: Any) -> str | tuple[Mapping[str, Any], ...]:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    blocks = require_list(value, "system")
    for index, block in enumerate(blocks):
        kind = block_type(block, f"system.{index}")
        if kind != "text":
            raise literal_error(f"system.{index}.type", ("text",))
        require_str(block.get("text"), f"system.{index}.text")
    return tuple(blocks)


def message_text(message: Mapping[str, Any] | None) -> str:
    """The text a message says: its string content, or its text blocks (tool results' text if it has none)."""
    if message is None:
        return ""
    content = message["content"]
    if isinstance(content, str):
        return content
    texts = [block["text"] for block in content if block["type"] == "text"]
    if not texts:
        texts = [text for block in content if block["type"] == "tool_result" for text in _texts(block.get("content"))]
    return "\n".join(texts)


def _texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                yield block["text"]
