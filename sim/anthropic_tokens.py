"""An estimate of a Messages request's input tokens, in place of Claude's unpublished tokenizer.

The same estimate feeds ``usage.input_tokens`` and ``POST
/v1/messages/count_tokens``, so the two agree as they do at the API; what it
counts is stated in :func:`count_input_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from sim.anthropic_request import MessagesRequest
from sim.tokens import CL100K, count_text, get_encoding

# The input-token estimate (see count_input_tokens).
PROMPT_BASE_TOKENS = 4
TOKENS_PER_MESSAGE = 3
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 2000
# Anthropic's documented tool-use system prompt for Claude 4 models, by tool_choice.
TOOL_PROMPT_TOKENS = {"auto": 346, "none": 346, "any": 313, "tool": 313}


def _block_tokens(block: Mapping[str, Any], count: Callable[[str], int]) -> int:
    kind = block["type"]
    if kind == "text":
        return count(block["text"])
    if kind in ("thinking", "redacted_thinking"):
        return 0  # the API strips earlier turns' thinking from the context
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and isinstance(source.get("data"), str) and source.get("type") == "text":
            return count(source["data"])
        return DOCUMENT_TOKENS
    if kind == "tool_use":
        return count(block["name"]) + count(orjson.dumps(block["input"]).decode())
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return sum(_block_tokens(part, count) for part in content if isinstance(part, dict) and "type" in part)
        return count(content) if isinstance(content, str) else 0
    return count(orjson.dumps(block).decode())


def count_input_tokens(request: MessagesRequest) -> int:
    """An ESTIMATE of the request's input tokens, in place of Claude's unpublished tokenizer.

    It is the ``cl100k_base`` token count of every text the model reads, plus
    fixed costs: 4 tokens per request and 3 per message (with these, the API
    documentation's example, system "You are a scientist" and user "Hello,
    Claude", counts 14, as the API reports); the system prompt's text; text
    blocks, tool_use names and JSON inputs, tool_result text; a text document's
    text; 1,600 tokens per image (the API's figure for a full-size image) and
    2,000 per other document; thinking blocks of earlier turns count nothing
    (the API strips them). With tools, each definition counts as its JSON text,
    plus the tool-use system prompt Anthropic documents for Claude 4 models:
    346 tokens (tool_choice auto or none) or 313 (any or tool).
    """
    encoding = get_encoding(CL100K)

    def count(text: str) -> int:
        return count_text(encoding, text)

    total = PROMPT_BASE_TOKENS
    system = request.system
    if isinstance(system, str):
        total += count(system)
    else:
        total += sum(count(block["text"]) for block in system)
    for message in request.messages:
        total += TOKENS_PER_MESSAGE
        content = message["content"]
        if isinstance(content, str):
            total += count(content)
        else:
            total += sum(_block_tokens(block, count) for block in content)
    if request.tools:
        total += TOOL_PROMPT_TOKENS[request.tool_choice]
        total += sum(count(orjson.dumps(definition).decode()) for definition in request.tools)
    return total
