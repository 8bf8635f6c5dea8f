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
from collections.abc import Mapping
from typing import Any

import orjson

from sim.chat_request import message_text
from sim.mocker import Mocker
from sim.mocker_rules import ERROR, Decision, RequestFacts
from sim.pipeline import BasePlugin, Context, PluginError, PluginRequest, ShortCircuit

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


def apply_overrides(body: bytes, decision: Decision, *, provider: str) -> bytes:
    """A rule's ``usage``, ``finish_reason`` and ``custom_fields`` applied to a JSON answer."""
    if decision.usage is None and decision.finish_reason is None and not decision.custom_fields:
        return body
    answer = orjson.loads(body)
    if not isinstance(answer, dict):
        return body
    if decision.usage is not None:
        prompt = int(decision.usage.get("prompt_tokens", 0))
        completion = int(decision.usage.get("completion_tokens", 0))
        total = int(decision.usage.get("total_tokens", prompt + completion))
        usage = answer.setdefault("usage", {})
        if provider == "anthropic":
            usage.update(input_tokens=prompt, output_tokens=completion)
        elif "input_tokens" in usage:  # the Responses API
            usage.update(input_tokens=prompt, output_tokens=completion, total_tokens=total)
        else:
            usage.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
    if decision.finish_reason is not None:
        if provider == "anthropic":
            answer["stop_reason"] = decision.finish_reason
        for choice in answer.get("choices", ()):
            choice["finish_reason"] = decision.finish_reason
    if decision.custom_fields:
        answer.update(decision.custom_fields)
    return orjson.dumps(answer)
