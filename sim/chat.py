"""OpenAI chat completions: the answer to a parsed request, as bytes.

An answer is synthesised once (:func:`synthesize`: which choices call tools, what
text the others say, exact token counts) and rendered either as the JSON body of
a non-streaming response or as the SSE events of a streaming one; the worker
only writes them out. Requests are parsed in :mod:`sim.chat_request`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from sim.chat_request import ChatRequest, last_user_text
from sim.errors import ApiError
from sim.logprobs import token_logprobs
from sim.replies import ReplyText, ReplyWriter, request_random, tokenized
from sim.schema_values import SchemaError, value_for
from sim.tokens import count_chat_prompt, count_text, count_tools, encoding_for_model
from sim.tools import ToolCall, choose_calls

DONE_EVENT = b"data: [DONE]\n\n"
# Tokens a tool call costs beyond its name and arguments (the call's framing).
TOOL_CALL_OVERHEAD_TOKENS = 4


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice: text (``reply``) or tool calls, and why it ended."""

    reply: ReplyText | None
    finish_reason: str
    calls: tuple[ToolCall, ...] = ()
    call_ids: tuple[str, ...] = ()
    logprobs: list[dict[str, Any]] | None = None

    @property
    def pieces(self) -> tuple[str, ...]:
        return self.reply.pieces if self.reply else ()


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """One synthesised answer: everything both response shapes are rendered from."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    completion_tokens: int

    @property
    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@lru_cache(maxsize=4096)
def system_fingerprint(model: str) -> str:
    """A stable fingerprint per model, as the API reports one per backend build."""
    return "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]


def structured_value(schema: Any, rand: Any, *, param: str) -> Any:
    """A value for a client's JSON schema; a schema nothing can satisfy is the client's 400."""
    try:
        return value_for(schema, rand)
    except SchemaError as error:
        raise ApiError(400, f"Invalid schema for {param}: {error}", param=param, code="invalid_json_schema") from error


def synthesize(request: ChatRequest, writer: ReplyWriter, *, created_s: int) -> ChatCompletion:
    """Decide the answer: tool calls or text for each choice, and exact token counts."""
    rand = request_random(request.body or {}, writer.generator.rng)
    encoding = encoding_for_model(request.model)
    prompt = last_user_text(request.messages)
    choices = []
    completion_tokens = 0
    for _ in range(request.n):
        calls = choose_calls(request.tools, after_tool_result=request.after_tool_result, rand=rand)
        if calls:
            ids = tuple("call_" + writer.generator.token_id(rand) for _ in calls)
            choices.append(Choice(None, "tool_calls", tuple(calls), ids))
            completion_tokens += sum(
                count_text(encoding, call.name) + count_text(encoding, call.arguments) + TOOL_CALL_OVERHEAD_TOKENS
                for call in calls
            )
            continue
        if request.json_schema is not None:
            value = structured_value(request.json_schema, rand, param="response_format")
            reply = tokenized(orjson.dumps(value).decode(), model=request.model, max_tokens=request.max_tokens)
        else:
            reply = writer.write(
                model=request.model,
                prompt=prompt,
                max_tokens=request.max_tokens,
                stop=request.stop,
                rand=rand,
                exact=request.exact_length,
            )
        logprobs = None
        if request.logprobs:
            logprobs = token_logprobs(
                reply.pieces, top=request.top_logprobs, alternatives=writer.generator.words, rand=rand
            )
        choices.append(Choice(reply, reply.finish, logprobs=logprobs))
        completion_tokens += reply.tokens
    prompt_tokens = count_chat_prompt(encoding, request.messages)
    if request.raw_tools:
        functions = [
            tool["function"]
            for tool in request.raw_tools
            if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict)
        ]
        prompt_tokens += count_tools(encoding, functions)
    return ChatCompletion(
        id="chatcmpl-" + writer.generator.token_id(),
        created=created_s,
        model=request.model,
        choices=tuple(choices),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _tool_calls(choice: Choice) -> list[dict[str, Any]]:
    return [
        {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call, call_id in zip(choice.calls, choice.call_ids, strict=True)
    ]


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.reply.text if choice.reply else None,
        "refusal": None,
        "annotations": [],
    }
    if choice.calls:
        message["tool_calls"] = _tool_calls(choice)
    return message


def completion_body(completion: ChatCompletion) -> bytes:
    """The JSON body of a non-streaming chat completion."""
    return orjson.dumps(
        {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [
                {
                    "index": index,
                    "message": _message(choice),
                    "logprobs": None if choice.logprobs is None else {"content": choice.logprobs, "refusal": None},
                    "finish_reason": choice.finish_reason,
                }
                for index, choice in enumerate(completion.choices)
            ],
            "usage": completion.usage,
            "service_tier": "default",
            "system_fingerprint": system_fingerprint(completion.model),
        }
    )


def _call_deltas(choice: Choice) -> list[bytes]:
    """A choice's tool calls as deltas: id, type and name in a call's first delta only,
    then its arguments over several deltas, each tagged with the call's index."""
    deltas = []
    for position, (call, call_id) in enumerate(zip(choice.calls, choice.call_ids, strict=True)):
        opening: dict[str, Any] = {
            "tool_calls": [
                {
                    "index": position,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        }
        if position == 0:
            opening = {"role": "assistant", "content": None, "refusal": None, **opening}
        deltas.append(orjson.dumps(opening))
        for part in call.argument_chunks():
            deltas.append(orjson.dumps({"tool_calls": [{"index": position, "function": {"arguments": part}}]}))
    return deltas


def stream_events(completion: ChatCompletion, *, include_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat completion, ``data: [DONE]`` last.

    Each content chunk carries one token, as the API's chunks do. With
    ``include_usage`` every chunk has ``"usage": null`` and one more chunk with
    empty ``choices`` carries the usage, as the API sends it.
    """
    head = orjson.dumps(
        {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "service_tier": "default",
            "system_fingerprint": system_fingerprint(completion.model),
        }
    )[:-1]
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
    prefix = b"data: " + head + b',"choices":[{"index":'

    def chunk(index: int, delta: bytes, finish: bytes, logprobs: bytes = b"null") -> bytes:
        parts = (prefix, str(index).encode(), b',"delta":', delta, b',"logprobs":', logprobs)
        return b"".join((*parts, b',"finish_reason":', finish, b"}]", tail))

    events = []
    opening = b'{"role":"assistant","content":"","refusal":null}'
    streams: list[list[tuple[bytes, bytes]]] = []
    for index, choice in enumerate(completion.choices):
        if choice.calls:
            streams.append([(delta, b"null") for delta in _call_deltas(choice)])
            continue
        events.append(chunk(index, opening, b"null"))
        logprobs = choice.logprobs or []
        streams.append(
            [
                (
                    b'{"content":' + orjson.dumps(piece) + b"}",
                    orjson.dumps({"content": [logprobs[i]], "refusal": None}) if logprobs else b"null",
                )
                for i, piece in enumerate(choice.pieces)
            ]
        )
    longest = max(len(stream) for stream in streams)
    for position in range(longest):
        for index, stream in enumerate(streams):
            if position < len(stream):
                delta, logprobs_bytes = stream[position]
                events.append(chunk(index, delta, b"null", logprobs_bytes))
    for index, choice in enumerate(completion.choices):
        events.append(chunk(index, b"{}", b'"' + choice.finish_reason.encode() + b'"'))
    if include_usage:
        usage = orjson.dumps({"choices": [], "usage": completion.usage})[1:]
        events.append(b"data: " + head + b"," + usage + b"\n\n")
    events.append(DONE_EVENT)
    return events
