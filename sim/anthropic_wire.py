"""Anthropic's wire shapes: message bodies, stream events, token counts, models and errors, as bytes.

Theory of operation: an :class:`AnthropicMessage` is rendered either as the
JSON body of ``POST /v1/messages`` or as its SSE events, each
``event: <type>\\ndata: <json>\\n\\n`` (the SDK drops events that lack the
``event:`` line). The stream follows the API's order: ``message_start`` (the
message with empty content, no stop reason and ``output_tokens: 1``), then
per content block ``content_block_start`` → deltas → ``content_block_stop``,
one ``ping`` after the first block starts, then ``message_delta`` (stop
reason and cumulative usage) and ``message_stop``. Text streams one
``text_delta`` per piece, thinking one ``thinking_delta`` per piece and then
a ``signature_delta``, tool input an empty ``input_json_delta`` and then the
argument chunks (the SDK re-parses the growing JSON at each one).

Deltas are the hot path of a load test: their fixed parts are prebuilt bytes
and only the piece is encoded per event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from sim.anthropic_message import AnthropicMessage, Block, TextBlock, ThinkingBlock
from sim.anthropic_request import max_output_tokens, parse_count_tokens_request
from sim.anthropic_tokens import count_input_tokens
from sim.errors import ApiError

# Current model ids as the anthropic SDK 2.12 lists them, then older ones still in use.
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-fable-5-2",
    "claude-fable-5-1",
    "claude-fable-5",
    "claude-mythos-5-2",
    "claude-mythos-5-1",
    "claude-mythos-5",
    "claude-mythos-preview",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-0",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-latest",
)

ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
        "conflict_error",
    }
)
_STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Release dates of model ids that carry no date (created_at of /v1/models).
_RELEASED = {
    "claude-opus-4-1": "2025-08-05",
    "claude-sonnet-4-0": "2025-05-14",
    "claude-sonnet-4-5": "2025-09-29",
    "claude-haiku-4-5": "2025-10-01",
    "claude-opus-4-5": "2025-11-01",
    "claude-3-5-haiku-latest": "2024-10-22",
}
_EPOCH = "1970-01-01"  # what the API reports when a release date is unknown
_LINES = frozenset({"haiku", "sonnet", "opus", "fable", "mythos"})
_DATED = re.compile(r"-(\d{4})(\d{2})(\d{2})$")
DEFAULT_CONTEXT_TOKENS = 200_000
DEFAULT_MAX_OUTPUT_TOKENS = 64_000

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def usage(message: AnthropicMessage, *, output_tokens: int | None = None) -> dict[str, Any]:
    """The ``usage`` object; ``output_tokens`` overrides the count (message_start reports 1)."""
    fields: dict[str, Any] = {
        "input_tokens": message.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": message.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }
    if message.thinking_tokens:
        fields["output_tokens_details"] = {"thinking_tokens": message.thinking_tokens}
    return fields


def block_object(block: Block) -> dict[str, Any]:
    """A content block as the non-streaming body has it."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return {"type": "tool_use", "id": block.id, "name": block.call.name, "input": block.call.input}


def _message_object(message: AnthropicMessage, *, final: bool) -> dict[str, Any]:
    return {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "model": message.model,
        "content": [block_object(block) for block in message.content] if final else [],
        "stop_reason": message.stop_reason if final else None,
        "stop_sequence": message.stop_sequence if final else None,
        "usage": usage(message) if final else usage(message, output_tokens=min(1, message.output_tokens)),
    }


def message_body(message: AnthropicMessage) -> bytes:
    """The JSON body of a non-streaming ``POST /v1/messages``."""
    return orjson.dumps(_message_object(message, final=True))


def _event(kind: bytes, data: Any) -> bytes:
    return b"event: " + kind + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block_start(block: Block) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": ""}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block.id, "name": block.call.name, "input": {}}


def _block_events(index: int, block: Block) -> list[bytes]:
    events = [
        _event(
            b"content_block_start",
            {"type": "content_block_start", "index": index, "content_block": _block_start(block)},
        )
    ]
    head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":' + str(index).encode()
    if isinstance(block, TextBlock):
        prefix = head + b',"delta":{"type":"text_delta","text":'
        events += [prefix + orjson.dumps(piece) + b"}}\n\n" for piece in block.pieces]
    elif isinstance(block, ThinkingBlock):
        prefix = head + b',"delta":{"type":"thinking_delta","thinking":'
        events += [prefix + orjson.dumps(piece) + b"}}\n\n" for piece in block.pieces]
        events.append(
            head + b',"delta":{"type":"signature_delta","signature":' + orjson.dumps(block.signature) + b"}}\n\n"
        )
    else:
        prefix = head + b',"delta":{"type":"input_json_delta","partial_json":'
        # The API opens every tool input with an empty delta before the JSON itself.
        events.append(prefix + b'""}}\n\n')
        events += [prefix + orjson.dumps(chunk) + b"}}\n\n" for chunk in block.call.argument_chunks()]
    events.append(
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":' + str(index).encode() + b"}\n\n"
    )
    return events


def stream_events(message: AnthropicMessage) -> list[bytes]:
    """The SSE events of a streamed ``POST /v1/messages``, ``message_stop`` last."""
    events = [_event(b"message_start", {"type": "message_start", "message": _message_object(message, final=False)})]
    for index, block in enumerate(message.content):
        events += _block_events(index, block)
    # The API pings once, right after the first block opens (or after message_start when there is none).
    events.insert(2 if message.content else 1, _PING)
    final_usage = usage(message)
    del final_usage["cache_creation"], final_usage["service_tier"]
    events.append(
        _event(
            b"message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message.stop_reason, "stop_sequence": message.stop_sequence},
                "usage": final_usage,
            },
        )
    )
    events.append(_MESSAGE_STOP)
    return events


def count_tokens_body(body: Any) -> bytes:
    """The answer to ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` (an estimate, see
    :func:`sim.anthropic_tokens.count_input_tokens`); raises :class:`ApiError` for a bad body."""
    return orjson.dumps({"input_tokens": count_input_tokens(parse_count_tokens_request(body))})


def display_name(model: str) -> str:
    """A human name for a model id, as the API gives: ``claude-sonnet-4-5-20250929`` → ``Claude Sonnet 4.5``."""
    if not model.startswith("claude-"):
        return model
    parts = [part for part in _DATED.sub("", model).split("-")[1:] if part != "latest"]
    words = [part.capitalize() for part in parts if not part.isdigit()]
    version = ".".join(part for part in parts if part.isdigit())
    return " ".join(["Claude", words[0], *([version] if version else []), *words[1:]]) if words else model


def _created_at(model: str) -> str:
    dated = _DATED.search(model)
    day = f"{dated[1]}-{dated[2]}-{dated[3]}" if dated else _RELEASED.get(model, _EPOCH)
    return day + "T00:00:00Z"


def model_info(model: str) -> dict[str, Any]:
    """One ``ModelInfo`` object of ``GET /v1/models``."""
    family = next((part for part in model.split("-")[1:] if part in _LINES), None)
    return {
        "type": "model",
        "id": model,
        "display_name": display_name(model),
        "created_at": _created_at(model),
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": family,
        "max_input_tokens": DEFAULT_CONTEXT_TOKENS,
        "max_tokens": max_output_tokens(model) or DEFAULT_MAX_OUTPUT_TOKENS,
    }


def models_body(
    models: Sequence[str], *, limit: int | None = None, after_id: str | None = None, before_id: str | None = None
) -> bytes:
    """The body of ``GET /v1/models``: all ``models``, or one page of them.

    With the query's ``limit`` (the API defaults it to 20), ``after_id`` or
    ``before_id``, one page is returned and ``has_more`` says whether the SDK
    should ask for the next; an unknown cursor gives an empty page.
    """
    chosen = list(models)
    if after_id is not None:
        chosen = chosen[chosen.index(after_id) + 1 :] if after_id in chosen else []
    if before_id is not None:
        chosen = chosen[: chosen.index(before_id)] if before_id in chosen else []
    has_more = False
    if limit is not None and len(chosen) > limit:
        has_more = True
        chosen = chosen[-limit:] if before_id is not None else chosen[:limit]
    return orjson.dumps(
        {
            "data": [model_info(model) for model in chosen],
            "has_more": has_more,
            "first_id": chosen[0] if chosen else None,
            "last_id": chosen[-1] if chosen else None,
        }
    )


def model_body(model: str) -> bytes:
    """The body of ``GET /v1/models/{model_id}``."""
    return orjson.dumps(model_info(model))


def model_not_found(model: str) -> ApiError:
    """The API's 404 for a model it does not serve."""
    return ApiError(404, f"model: {model}", error_type="not_found_error")


def error_type(error: ApiError) -> str:
    """Anthropic's error type for ``error``: its own when it already is one, else by status."""
    if error.error_type in ERROR_TYPES and error.error_type != "invalid_request_error":
        return error.error_type
    known = _STATUS_ERROR_TYPES.get(error.status)
    if known is not None:
        return known
    return "api_error" if error.status >= 500 else "invalid_request_error"


def _error_object(error: ApiError, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(error), "message": error.message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_body(error: ApiError, *, request_id: str | None = None) -> bytes:
    """``{"type":"error","error":{type, message}}``, with ``request_id`` as the API adds it when given."""
    return orjson.dumps(_error_object(error, request_id))


def error_event(error: ApiError, *, request_id: str | None = None) -> bytes:
    """A mid-stream error: ``event: error`` with the error body; the SDK raises on it."""
    return b"event: error\ndata: " + orjson.dumps(_error_object(error, request_id)) + b"\n\n"
