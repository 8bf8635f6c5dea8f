"""When each part of an answer leaves: the pacing of streams and the delivery faults.

Theory of operation. A :class:`Delivery` is computed once per request (pure) and
carried out by the worker (which owns the clock). ``offsets_s`` are the moments,
counted from when the answer is ready, at which each stream event is sent; a
whole (non-stream) answer goes at ``offsets_s[0]``. Clients measure time to
first token at the first event that carries a token and inter-token latency
between token events, so only token events take a gap from the latency plan:
the events before the first token (role chunk, ``message_start``, ``ping``) go
with it, and those after the last (finish, usage, ``[DONE]``) right after it.

Delivery faults spoil what is sent: ``cut_after`` closes the connection after
that many events (or halfway through a whole body), ``error_event`` replaces the
rest of a stream with an error event, ``hang_s`` holds the answer back that long
and then drops the connection, ``trickle_s`` sends whole answers in pieces that
far apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# How a token event starts, in each stream format (the ``event:`` lines of
# Responses and Anthropic; the delta of chat and legacy completion chunks).
_TOKEN_EVENT_PREFIXES = (
    b"event: content_block_delta",
    b"event: response.output_text.delta",
    b"event: response.function_call_arguments.delta",
    b"event: response.reasoning_summary_text.delta",
)
_TOKEN_MARKERS = (b'"delta":{"content":"', b'"arguments":"', b'"text":"')


def is_token_event(event: bytes) -> bool:
    """Whether an SSE event carries generated text (a token or a piece of tool arguments)."""
    if event.startswith(b"event: "):
        return event.startswith(_TOKEN_EVENT_PREFIXES)
    for marker in _TOKEN_MARKERS:
        at = event.find(marker)
        if at >= 0 and event[at + len(marker) : at + len(marker) + 1] != b'"':  # not an empty string
            return True
    return False


@dataclass(frozen=True, slots=True)
class Delivery:
    offsets_s: tuple[float, ...] = (0.0,)
    cut_after: int | None = None
    error_event: bytes | None = None
    hang_s: float = 0.0
    trickle_s: float = 0.0

    @property
    def first_s(self) -> float:
        return self.offsets_s[0] if self.offsets_s else 0.0


IMMEDIATE = Delivery()


def stream_offsets(events: Sequence[bytes], first_s: float, gaps_s: Sequence[float]) -> tuple[float, ...]:
    """The send time of each event: token events at ``first_s`` then one gap apart, the rest alongside."""
    offsets: list[float] = []
    at = first_s
    tokens_seen = 0
    for event in events:
        if is_token_event(event):
            if tokens_seen:
                at += gaps_s[tokens_seen - 1] if tokens_seen - 1 < len(gaps_s) else 0.0
            tokens_seen += 1
        offsets.append(at)
    return tuple(offsets)


def count_token_events(events: Sequence[bytes]) -> int:
    return sum(1 for event in events if is_token_event(event))
