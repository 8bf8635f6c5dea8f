"""Tool calls: which of the offered tools a simulated model calls, and with what arguments.

Every provider's parser reduces its own tool format (OpenAI ``tools`` with
``function.parameters``, Anthropic ``tools`` with ``input_schema``, Responses
``function`` tools) to :class:`Tool` and its choice setting to
:class:`ToolPlan`; this module decides the calls, and each provider renders
them in its own wire shape.

The decision imitates an agent loop: when tools may be called (``auto``) the
model calls them, unless the conversation's last turn is a tool result, in which
case it answers with text, so an agent that feeds results back terminates.
``required`` and a named tool always call. With parallel calls allowed, one to
three distinct tools are called at once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sim.schema_values import value_for

MAX_PARALLEL_CALLS = 3
# Streamed arguments arrive in pieces of about this many characters, as the
# providers stream a few tokens of JSON per delta.
ARGUMENT_CHUNK_CHARS = 12


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What the request allows: ``mode`` is ``none``, ``auto`` or ``required``; ``forced`` names one tool."""

    tools: tuple[Tool, ...] = ()
    mode: str = "auto"
    forced: str | None = None
    parallel: bool = True


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    input: Any
    arguments: str  # ``input`` as JSON text, as OpenAI sends it

    def argument_chunks(self) -> list[str]:
        """``arguments`` split for streaming: several deltas whose concatenation is the whole."""
        text = self.arguments
        return [text[i : i + ARGUMENT_CHUNK_CHARS] for i in range(0, len(text), ARGUMENT_CHUNK_CHARS)] or [""]


def choose_calls(plan: ToolPlan, *, after_tool_result: bool, rand: random.Random) -> list[ToolCall]:
    """The calls the simulated model makes; empty when it answers with text."""
    if not plan.tools or plan.mode == "none":
        return []
    if plan.forced is not None:
        chosen = [tool for tool in plan.tools if tool.name == plan.forced][:1]
    elif plan.mode != "required" and after_tool_result:
        return []
    elif plan.parallel:
        count = rand.randint(1, min(MAX_PARALLEL_CALLS, len(plan.tools)))
        chosen = rand.sample(list(plan.tools), count)
    else:
        chosen = [rand.choice(plan.tools)]
    return [call_of(tool, rand) for tool in chosen]


def call_of(tool: Tool, rand: random.Random) -> ToolCall:
    value = value_for(tool.schema, rand)
    return ToolCall(tool.name, value, orjson.dumps(value).decode())


def names(tools: Sequence[Tool]) -> set[str]:
    return {tool.name for tool in tools}
