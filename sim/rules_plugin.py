"""The scenario rules as a plugin: the built-in ``rules`` step of every request's pipeline.

Its pre-hook describes the request to the :class:`~sim.mocker.Mocker` (provider,
model, message text, size, headers), keeps the decision in the context for the
worker's provider step, and short-circuits with the rule's error when the
decision is one. The decision also carries the latency to wait and the rule
that applied (counted as that rule's hit).

The message text is read from the raw body, before any endpoint validates it:
``messages`` (chat and Anthropic, plus Anthropic's ``system``), ``input``
(Responses) or ``prompt`` (legacy completions), whatever their shape.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from sim.chat_request import message_text
from sim.mocker import Mocker
from sim.mocker_rules import ERROR, Decision, RequestFacts
from sim.pipeline import REFUSAL, BasePlugin, Context, PluginError, PluginRequest, ShortCircuit

DECISION = "rules.decision"
SIZE_BYTES = "request.size_bytes"
# The error type a rule's error gets when it names none, by status (OpenAI's words).
_DEFAULT_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                  404: "not_found_error", 429: "rate_limit_error"}  # fmt: skip


def _messages_texts(messages: Any) -> tuple[list[str], str]:
    texts: list[str] = []
    last_user = ""
    if isinstance(messages, str):
        return [messages], messages
    if not isinstance(messages, list):
        return texts, last_user
    for message in messages:
        if isinstance(message, str):
            texts.append(message)
            last_user = message
        elif isinstance(message, Mapping):
            text = message_text(message)
            texts.append(text)
            if message.get("role", "user") == "user" and message.get("type", "message") == "message":
                last_user = text
    return texts, last_user


def request_texts(body: Mapping[str, Any]) -> tuple[str, str]:
    """All the message text of a request body, and its last user message."""
    if "messages" in body:
        texts, last_user = _messages_texts(body["messages"])
        system = body.get("system")
        if isinstance(system, str):
            texts.insert(0, system)
        elif isinstance(system, list):
            texts.insert(0, message_text({"content": system}))
        return "\n".join(texts), last_user
    for field in ("input", "prompt"):
        if field in body:
            texts, last_user = _messages_texts(body[field])
            return "\n".join(texts), last_user
    return "", ""


class RulesPlugin(BasePlugin):
    """Decides each request by the loaded rules; swap ``mocker`` to switch documents."""

    name = "rules"

    def __init__(self, mocker: Mocker, rand: random.Random) -> None:
        self.mocker = mocker
        self._random = rand

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if REFUSAL in ctx:  # refused already (unknown route, bad body): no rule applies
            return request
        text, last_user = request_texts(request.body)
        facts = RequestFacts(
            provider=request.provider,
            model=request.model,
            message_text=text,
            last_user_message=last_user,
            size_bytes=int(ctx.get(SIZE_BYTES, 0)),
            headers=request.headers,
        )
        decision = self.mocker.decide(facts, self._random)
        ctx[DECISION] = decision
        if decision.kind == ERROR and decision.error is not None:
            return ShortCircuit(error=rule_error(decision))
        return request


def rule_error(decision: Decision) -> PluginError:
    spec = decision.error
    assert spec is not None
    status = spec.status_code
    error_type = spec.type or _DEFAULT_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return PluginError(status, spec.message, type=error_type, code=spec.code, allow_fallbacks=decision.allow_fallbacks)


def has_overrides(decision: Decision) -> bool:
    return decision.usage is not None or decision.finish_reason is not None or bool(decision.custom_fields)


def apply_overrides(body: bytes, decision: Decision, *, provider: str) -> bytes:
    """A rule's ``usage``, ``finish_reason`` and ``custom_fields`` applied to a JSON answer."""
    if not has_overrides(decision):
        return body
    answer = orjson.loads(body)
    if not isinstance(answer, dict):
        return body
    _override_answer(answer, decision, provider=provider, usage_always=True)
    return orjson.dumps(answer)


def apply_stream_overrides(events: Sequence[bytes], decision: Decision, *, provider: str) -> list[bytes]:
    """The same overrides applied to a stream's events, where a client would read each.

    Every chunk of a chat or legacy completion stream gets the custom fields (each
    is an object of its own), the chunk that finishes a choice gets the
    ``finish_reason`` and the usage chunk the usage; Responses events get them on
    the ``response`` they carry; Anthropic's ``message_start`` gets the custom
    fields and input tokens, its ``message_delta`` the stop reason and output tokens.
    """
    if not has_overrides(decision):
        return list(events)
    return [_override_event(event, decision, provider=provider) for event in events]


def _override_event(event: bytes, decision: Decision, *, provider: str) -> bytes:
    head, marker, data = event.partition(b"data: ")
    if not marker or data.startswith(b"[DONE]"):
        return event
    chunk = orjson.loads(data)
    if not isinstance(chunk, dict):
        return event
    kind = chunk.get("type")
    if provider == "anthropic":
        if kind == "message_start" and isinstance(chunk.get("message"), dict):
            _override_answer(chunk["message"], decision, provider=provider, usage_always=False, stop=False)
        elif kind == "message_delta":
            _override_message_delta(chunk, decision)
        else:
            return event
    elif isinstance(kind, str) and kind.startswith("response."):
        if not isinstance(chunk.get("response"), dict):
            return event
        _override_answer(chunk["response"], decision, provider=provider, usage_always=False)
    else:
        _override_answer(chunk, decision, provider=provider, usage_always=False)
    return head + marker + orjson.dumps(chunk) + b"\n\n"


def _override_answer(
    answer: dict[str, Any], decision: Decision, *, provider: str, usage_always: bool, stop: bool = True
) -> None:
    """Overrides on one answer object in place; ``usage_always`` adds a usage where it has none."""
    usage = answer.get("usage")
    if decision.usage is not None and (isinstance(usage, dict) or usage_always):
        prompt, completion, total = _usage_numbers(decision.usage)
        usage = usage if isinstance(usage, dict) else answer.setdefault("usage", {})
        if provider == "anthropic":
            usage.update(input_tokens=prompt, output_tokens=completion)
        elif "input_tokens" in usage:  # the Responses API
            usage.update(input_tokens=prompt, output_tokens=completion, total_tokens=total)
        else:
            usage.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
    if decision.finish_reason is not None:
        if provider == "anthropic" and stop:
            answer["stop_reason"] = decision.finish_reason
        for choice in answer.get("choices", ()):
            # A stream's chunk carries the reason only where a choice finishes.
            if usage_always or choice.get("finish_reason") is not None:
                choice["finish_reason"] = decision.finish_reason
    if decision.custom_fields:
        answer.update(decision.custom_fields)


def _override_message_delta(chunk: dict[str, Any], decision: Decision) -> None:
    delta = chunk.get("delta")
    if decision.finish_reason is not None and isinstance(delta, dict):
        delta["stop_reason"] = decision.finish_reason
    usage = chunk.get("usage")
    if decision.usage is not None and isinstance(usage, dict):
        prompt, completion, _ = _usage_numbers(decision.usage)
        usage["output_tokens"] = completion
        if "input_tokens" in usage:
            usage["input_tokens"] = prompt


def _usage_numbers(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", 0))
    return prompt, completion, int(usage.get("total_tokens", prompt + completion))
