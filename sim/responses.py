"""OpenAI Responses API (``POST /v1/responses``): the answer decided, then rendered as bytes.

Theory of operation: :func:`parse_responses_request` (in
:mod:`sim.responses_request`) validates the body; :func:`synthesize` decides
the answer once — function calls when the tool plan calls for them, otherwise
one assistant message whose text comes from the :class:`ReplyWriter` (or, with
``text.format`` ``json_schema``/``json_object``, a JSON value generated for the
schema), with exact token counts — and returns a frozen
:class:`ModelResponse`. Both wire shapes are rendered from it:
:func:`response_body` is the Response object of a plain request, and
:func:`stream_events` the SSE events of a streamed one, whose final event
carries that same object.

A reply cut at ``max_output_tokens`` makes the response ``incomplete``
(``incomplete_details.reason`` ``max_output_tokens``, the message item
``incomplete``), and its stream ends with ``response.incomplete`` instead of
``response.completed``, as the API's does.

Token counts: ``input_tokens`` counts the input as chat messages (the
instructions first, as a developer message; a function call as an assistant
message with ``tool_calls``; its output as a ``tool`` message) with
:func:`count_chat_prompt`, plus the function definitions by
:func:`count_tools` — the formulas the chat endpoint uses, exact in tiktoken
for the text, approximate for the API's hidden formatting, which is not
published. Images and files add nothing. ``output_tokens`` is the reply's exact
count, or each call's name and arguments plus a small per-call overhead.

Identifiers imitate the API's: ``resp_``, ``msg_`` and ``fc_`` followed by 48
hex digits that begin with the creation time and end with a suffix shared by
every item of one response; ``call_`` with 24 alphanumerics.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sim.chat import TOOL_CALL_OVERHEAD_TOKENS
from sim.errors import ApiError
from sim.replies import ReplyWriter, tokenized
from sim.responses_request import ResponsesRequest, parse_responses_request
from sim.schema_values import SchemaError, value_for
from sim.tokens import count_chat_prompt, count_text, count_tools, encoding_for_model
from sim.tools import ToolCall, choose_calls

__all__ = [
    "ModelResponse",
    "OutputCall",
    "OutputMessage",
    "ResponsesRequest",
    "parse_responses_request",
    "response_body",
    "stream_events",
    "synthesize",
]

# Stream obfuscation pads each delta event with random characters so that
# payload sizes do not reveal the tokens; padded to about this many characters.
OBFUSCATION_TARGET_CHARS = 16
_BILLING = {"payer": "developer"}


@dataclass(frozen=True, slots=True)
class OutputMessage:
    """An assistant message item: its text as the pieces the stream sends."""

    id: str
    pieces: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class OutputCall:
    """A ``function_call`` item."""

    id: str
    call_id: str
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One synthesised answer: everything both wire shapes are rendered from.

    ``completed_at`` starts equal to ``created_at``; a worker that takes time to
    deliver may ``dataclasses.replace`` it before rendering the final object.
    """

    id: str
    created_at: int
    completed_at: int
    request: ResponsesRequest
    output: tuple[OutputMessage | OutputCall, ...]
    incomplete: bool
    input_tokens: int
    output_tokens: int


class _Ids:
    """Item ids of one response: creation time, random middle, shared suffix (as the API's ids are built)."""

    def __init__(self, created_s: int, rand: random.Random) -> None:
        self._head = f"{created_s & 0xFFFFFFFF:08x}"
        self._suffix = rand.randbytes(8).hex()
        self._rand = rand

    def next(self, prefix: str) -> str:
        return prefix + self._head + self._rand.randbytes(12).hex() + self._suffix


def _schema_error(request: ResponsesRequest, error: SchemaError) -> ApiError:
    """The 400 for a tool schema nothing can satisfy, naming the tool as the API does."""
    for tool in request.plan.tools:
        try:
            value_for(tool.schema, random.Random(0))
        except SchemaError:
            index = next(i for i, echo in enumerate(request.tools) if echo.get("name") == tool.name)
            return ApiError(
                400,
                f"Invalid schema for function '{tool.name}': {error}",
                param=f"tools[{index}].parameters",
                code="invalid_function_parameters",
            )
    return ApiError(400, f"Invalid schema for function: {error}", param="tools", code="invalid_function_parameters")


def _structured_text(request: ResponsesRequest, schema: Mapping[str, Any], rand: random.Random) -> str:
    try:
        value = value_for(schema, rand)
    except SchemaError as error:
        name = request.text["format"].get("name", "")
        raise ApiError(
            400,
            f"Invalid schema for response_format '{name}': {error}",
            param="text.format.schema",
            code="invalid_json_schema",
        ) from error
    # Structured output is compact JSON, as the models write it.
    return orjson.dumps(value).decode()


def synthesize(
    request: ResponsesRequest, writer: ReplyWriter, *, created_s: int, rand: random.Random | None = None
) -> ModelResponse:
    """Decide the answer: function calls or a message, and exact token counts.

    ``rand`` drives what is said (a seeded stream gives a reproducible answer);
    identifiers always come from the writer's own stream, so they never repeat.
    """
    rand = rand or writer.generator.rng
    ids = _Ids(created_s, writer.generator.rng)
    encoding = encoding_for_model(request.model)
    try:
        calls = choose_calls(request.plan, after_tool_result=request.after_tool_result, rand=rand)
    except SchemaError as error:
        raise _schema_error(request, error) from error
    output: tuple[OutputMessage | OutputCall, ...]
    if calls:
        output = tuple(OutputCall(ids.next("fc_"), "call_" + writer.generator.token_id(), call) for call in calls)
        output_tokens = sum(
            count_text(encoding, call.name) + count_text(encoding, call.arguments) + TOOL_CALL_OVERHEAD_TOKENS
            for call in calls
        )
        incomplete = False
    else:
        if request.output_schema is not None:
            text = _structured_text(request, request.output_schema, rand)
            reply = tokenized(text, model=request.model, max_tokens=request.max_output_tokens)
        else:
            reply = writer.write(
                model=request.model, prompt=request.prompt, max_tokens=request.max_output_tokens, rand=rand
            )
        output = (OutputMessage(ids.next("msg_"), reply.pieces),)
        output_tokens = reply.tokens
        incomplete = reply.finish == "length"
    functions = [tool for tool in request.tools if tool.get("type") == "function"]
    return ModelResponse(
        id=ids.next("resp_"),
        created_at=created_s,
        completed_at=created_s,
        request=request,
        output=output,
        incomplete=incomplete,
        input_tokens=count_chat_prompt(encoding, request.messages) + count_tools(encoding, functions),
        output_tokens=output_tokens,
    )


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _item(item: OutputMessage | OutputCall, status: str, *, started: bool = False) -> dict[str, Any]:
    """An output item as the API shows it; ``started`` is its empty form in ``output_item.added``."""
    if isinstance(item, OutputCall):
        arguments = "" if started else item.call.arguments
        return {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": item.call_id,
            "name": item.call.name,
        }
    content = [] if started else [_text_part(item.text)]
    return {"id": item.id, "type": "message", "status": status, "content": content, "role": "assistant"}


def _item_status(response: ModelResponse) -> str:
    return "incomplete" if response.incomplete else "completed"


def _response_object(response: ModelResponse, *, final: bool) -> dict[str, Any]:
    """The Response object: in progress (no output yet) or final."""
    request = response.request
    status = ("incomplete" if response.incomplete else "completed") if final else "in_progress"
    usage = None
    if final:
        usage = {
            "input_tokens": response.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": response.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": response.input_tokens + response.output_tokens,
        }
    item_status = _item_status(response)
    body = {
        "id": response.id,
        "object": "response",
        "created_at": response.created_at,
        "status": status,
        "background": request.background,
        "billing": _BILLING,
        "completed_at": response.completed_at if final and not response.incomplete else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if final and response.incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "model": request.model,
        "output": [_item(item, item_status) for item in response.output] if final else [],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.prompt_cache_key,
        "prompt_cache_retention": request.prompt_cache_retention,
        "reasoning": request.reasoning,
        "safety_identifier": request.safety_identifier,
        "service_tier": request.service_tier,
        "store": request.store,
        "temperature": request.temperature,
        "text": request.text,
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_logprobs": request.top_logprobs,
        "top_p": request.top_p,
        "truncation": request.truncation,
        "usage": usage,
        "user": request.user,
        "metadata": request.metadata,
    }
    # The API sends ``"usage": null`` and ``"user": null``, but OpenAI's published
    # schema types them an object and a string: null ones are left out rather than
    # fail validators built on that schema (the SDKs read both as absent).
    for key in ("usage", "user"):
        if body[key] is None:
            del body[key]
    return body


def response_body(response: ModelResponse) -> bytes:
    """The JSON body of a non-streaming ``POST /v1/responses``."""
    return orjson.dumps(_response_object(response, final=True))


class _EventWriter:
    """Numbers and frames SSE events: ``event: <type>`` then ``data: <json>``, LF only."""

    def __init__(self, *, pad: str) -> None:
        self.events: list[bytes] = []
        self._pad = pad

    def add(self, kind: str, payload: dict[str, Any]) -> None:
        data = orjson.dumps({"type": kind, "sequence_number": len(self.events), **payload})
        self.events.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")

    def obfuscation(self, delta: str) -> str:
        width = max(1, OBFUSCATION_TARGET_CHARS - len(delta))
        start = len(self.events) % (len(self._pad) - OBFUSCATION_TARGET_CHARS)
        return self._pad[start : start + width]


def _message_events(out: _EventWriter, item: OutputMessage, index: int, obfuscate: bool) -> None:
    where = {"item_id": item.id, "output_index": index, "content_index": 0}
    out.add("response.content_part.added", {**where, "part": _text_part("")})
    for piece in item.pieces:
        delta: dict[str, Any] = {**where, "delta": piece, "logprobs": []}
        if obfuscate:
            delta["obfuscation"] = out.obfuscation(piece)
        out.add("response.output_text.delta", delta)
    out.add("response.output_text.done", {**where, "text": item.text, "logprobs": []})
    out.add("response.content_part.done", {**where, "part": _text_part(item.text)})


def _call_events(out: _EventWriter, item: OutputCall, index: int, obfuscate: bool) -> None:
    where = {"item_id": item.id, "output_index": index}
    for chunk in item.call.argument_chunks():
        delta: dict[str, Any] = {**where, "delta": chunk}
        if obfuscate:
            delta["obfuscation"] = out.obfuscation(chunk)
        out.add("response.function_call_arguments.delta", delta)
    out.add(
        "response.function_call_arguments.done", {**where, "name": item.call.name, "arguments": item.call.arguments}
    )


def stream_events(response: ModelResponse) -> list[bytes]:
    """The SSE events of a streamed response, ``sequence_number`` rising from 0.

    ``response.created`` and ``response.in_progress`` carry the response with no
    output; each item is opened (``output_item.added``), filled by deltas (one
    text piece or argument chunk each) and closed (``output_item.done``); the
    last event (``response.completed``, or ``response.incomplete`` when cut)
    carries the whole Response object.
    """
    out = _EventWriter(pad=response.id.removeprefix("resp_"))
    opening = _response_object(response, final=False)
    out.add("response.created", {"response": opening})
    out.add("response.in_progress", {"response": opening})
    status = _item_status(response)
    obfuscate = response.request.obfuscate
    for index, item in enumerate(response.output):
        out.add("response.output_item.added", {"output_index": index, "item": _item(item, "in_progress", started=True)})
        if isinstance(item, OutputCall):
            _call_events(out, item, index, obfuscate)
        else:
            _message_events(out, item, index, obfuscate)
        out.add("response.output_item.done", {"output_index": index, "item": _item(item, status)})
    final = "response.incomplete" if response.incomplete else "response.completed"
    out.add(final, {"response": _response_object(response, final=True)})
    return out.events
