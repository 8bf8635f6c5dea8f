"""The simulated Claude's answer to a Messages request: content blocks, stop reason and usage.

Theory of operation: :func:`synthesize` decides the whole answer up front,
as one frozen :class:`AnthropicMessage`, and :mod:`sim.anthropic_wire` renders
it either as a JSON body or as the SSE events of a stream, so both shapes say
the same thing. Output is spent against ``max_tokens`` in the order Claude
writes it:

1. a ``thinking`` block when thinking is on (``enabled``: within
   ``budget_tokens``; ``adaptive``: as the model likes; ``between_tools``: only
   after a tool result), its tokens counted in ``output_tokens``;
2. tool calls, chosen by :func:`sim.tools.choose_calls` (``auto`` calls unless
   the last user turn carries tool results, so agent loops end), as many as the
   remaining budget holds, after a short preamble of text when the model chose
   to call on its own (forced calls come without one, as the API prefills);
3. otherwise the reply text from :class:`ReplyWriter` (or, with
   ``output_config.format``, a JSON value of the schema), cut at the remaining
   budget (``max_tokens``) or at a stop sequence (``stop_sequence``).

So ``output_tokens`` never exceeds ``max_tokens``. Tool-call tokens, like
input tokens, are an estimate (``cl100k_base`` count of the arguments JSON and
the name, plus a fixed block overhead).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

import orjson

from sim import schema_values
from sim.anthropic_request import SCHEMA_INVALID, MessagesRequest
from sim.anthropic_tokens import count_input_tokens
from sim.errors import ApiError
from sim.replies import ReplyText, ReplyWriter, tokenized
from sim.tokens import CL100K, count_text, get_encoding
from sim.tools import ToolCall, choose_calls

# Tokens a tool_use block costs beyond its name and arguments (its framing).
TOOL_USE_OVERHEAD_TOKENS = 8
PREAMBLE_TOKENS_MIN = 6
PREAMBLE_TOKENS_MAX = 16
# Thinking signatures are opaque base64 of a few hundred bytes.
SIGNATURE_BYTES = 240


@dataclass(frozen=True, slots=True)
class TextBlock:
    pieces: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """``pieces`` is empty when the request asked for ``display: omitted``; ``tokens`` are billed either way."""

    pieces: tuple[str, ...]
    signature: str
    tokens: int

    @property
    def thinking(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    id: str
    call: ToolCall


Block = TextBlock | ThinkingBlock | ToolUseBlock


@dataclass(frozen=True, slots=True)
class AnthropicMessage:
    """One synthesised answer: everything the JSON body and the stream are rendered from."""

    id: str
    model: str
    content: tuple[Block, ...]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    thinking_tokens: int = 0


def _id(prefix: str, writer: ReplyWriter, rand: random.Random) -> str:
    # The API's ids are "01" and 22 more characters after the prefix (msg_01…, toolu_01…).
    return prefix + "01" + writer.generator.token_id(rand)[:22]


def _thinking(request: MessagesRequest, writer: ReplyWriter, rand: random.Random) -> ThinkingBlock | None:
    thinking = request.thinking
    if thinking.mode == "disabled" or request.max_tokens < 2:
        return None
    if thinking.mode == "between_tools" and not request.after_tool_result:
        return None
    # At least one token is left for the answer, as the API requires budget_tokens < max_tokens.
    budget = min(thinking.budget_tokens or request.max_tokens, request.max_tokens - 1)
    reply = writer.generated(max_tokens=budget, rand=rand)
    signature = base64.b64encode(rand.randbytes(SIGNATURE_BYTES)).decode()
    pieces = () if thinking.display == "omitted" else reply.pieces
    return ThinkingBlock(pieces, signature, reply.tokens)


def call_tokens(call: ToolCall) -> int:
    """Estimated output tokens of one tool_use block."""
    encoding = get_encoding(CL100K)
    return count_text(encoding, call.name) + count_text(encoding, call.arguments) + TOOL_USE_OVERHEAD_TOKENS


def _calls(request: MessagesRequest, rand: random.Random) -> list[ToolCall]:
    plan = request.tool_plan
    try:
        return choose_calls(plan, after_tool_result=request.after_tool_result, rand=rand)
    except schema_values.SchemaError as error:
        for index, definition in enumerate(request.tools):
            tool = next((t for t in plan.tools if t.name == definition.get("name")), None)
            if tool is None:
                continue
            try:
                schema_values.value_for(tool.schema, random.Random(0))
            except schema_values.SchemaError as failing:
                raise ApiError(
                    400, f"tools.{index}.custom.input_schema: {SCHEMA_INVALID} Tool '{tool.name}': {failing}"
                ) from failing
        raise ApiError(400, f"tools: {SCHEMA_INVALID} {error}") from error


def _structured(request: MessagesRequest, schema_rand: random.Random, limit: int) -> ReplyText:
    assert request.output_schema is not None
    try:
        value = schema_values.value_for(request.output_schema, schema_rand)
    except schema_values.SchemaError as error:
        raise ApiError(400, f"output_config.format.schema: {SCHEMA_INVALID} {error}") from error
    return tokenized(orjson.dumps(value).decode(), model=request.model, max_tokens=limit)


def synthesize(request: MessagesRequest, writer: ReplyWriter, *, rand: random.Random) -> AnthropicMessage:
    """Decide the answer to ``request``: blocks, stop reason and token counts.

    Raises :class:`ApiError` (400) when a tool's or the output format's JSON
    schema admits no value.
    """
    content: list[Block] = []
    thinking = _thinking(request, writer, rand)
    thinking_tokens = 0
    if thinking is not None:
        thinking_tokens = thinking.tokens
        content.append(thinking)
    remaining = request.max_tokens - thinking_tokens
    calls = _calls(request, rand) if remaining > 0 else []
    kept: list[ToolCall] = []
    spent = 0
    for call in calls:
        cost = call_tokens(call)
        if spent + cost > remaining:
            break
        kept.append(call)
        spent += cost
    if kept:
        remaining -= spent
        preamble = rand.randint(PREAMBLE_TOKENS_MIN, PREAMBLE_TOKENS_MAX)
        if request.tool_plan.forced is None and request.tool_plan.mode == "auto" and preamble <= remaining:
            content.append(TextBlock(tuple(writer.generator.pieces(preamble, complete=True, rand=rand))))
            spent += preamble
        content.extend(ToolUseBlock(_id("toolu_", writer, rand), call) for call in kept)
        return AnthropicMessage(
            id=_id("msg_", writer, rand),
            model=request.model,
            content=tuple(content),
            stop_reason="tool_use",
            stop_sequence=None,
            input_tokens=count_input_tokens(request),
            output_tokens=thinking_tokens + spent,
            thinking_tokens=thinking_tokens,
        )
    if request.output_schema is not None:
        reply = _structured(request, rand, remaining)
    else:
        reply = writer.write(
            model=request.model,
            prompt=request.prompt,
            max_tokens=remaining,
            stop=request.stop_sequences,
            rand=rand,
        )
    if reply.pieces:
        content.append(TextBlock(reply.pieces))
    if reply.stop_sequence is not None:
        stop_reason = "stop_sequence"
    elif reply.finish == "length" or remaining <= 0:
        stop_reason = "max_tokens"
    else:
        stop_reason = "end_turn"
    return AnthropicMessage(
        id=_id("msg_", writer, rand),
        model=request.model,
        content=tuple(content),
        stop_reason=stop_reason,
        stop_sequence=reply.stop_sequence,
        input_tokens=count_input_tokens(request),
        output_tokens=thinking_tokens + reply.tokens,
        thinking_tokens=thinking_tokens,
    )
