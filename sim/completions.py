"""OpenAI legacy completions (``POST /v1/completions``): parse, synthesise, render.

A prompt is a string, a list of strings, a token array or a list of token
arrays; each prompt gets ``n`` choices, indexed ``prompt * n + choice`` as the
API does. ``max_tokens`` defaults to 16, the API's default for this endpoint, so
a request without it gets 16 tokens and ``finish_reason: "length"``. ``echo``
puts the prompt in front of the completion text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

from sim import params
from sim.chat import system_fingerprint
from sim.errors import ApiError
from sim.replies import ReplyText, ReplyWriter, request_random
from sim.tokens import encoding_for_model

DEFAULT_MAX_TOKENS = 16
MAX_PROMPTS = 2048
MAX_CHOICES = 128
MAX_LOGPROBS = 5
DONE_EVENT = b"data: [DONE]\n\n"

Prompt = str | list[int]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompts: tuple[Prompt, ...]
    max_tokens: int
    n: int
    echo: bool
    stream: bool
    include_usage: bool
    stop: tuple[str, ...]
    logprobs: int | None
    exact_length: bool
    body: dict[str, Any]


def _prompts(value: Any) -> tuple[Prompt, ...]:
    if value is None:
        raise params.missing("prompt")
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value:
        raise params.invalid_type("prompt", "a string or an array", value)
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return (list(value),)
    if len(value) > MAX_PROMPTS:
        raise ApiError(
            400, f"Invalid 'prompt': too many prompts (at most {MAX_PROMPTS}).", param="prompt", code="invalid_value"
        )
    prompts: list[Prompt] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            prompts.append(item)
        elif isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            prompts.append(list(item))
        else:
            raise params.invalid_type(f"prompt[{index}]", "a string or an array of integers", item)
    return tuple(prompts)


def parse_completion_request(body: Any) -> CompletionRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    body = params.require_object(body)
    model = body.get("model")
    if model is None or model == "":
        raise params.missing("model")
    if not isinstance(model, str):
        raise params.invalid_type("model", "a string", model)
    stream = params.optional_bool(body, "stream")
    max_tokens = params.optional_int(body, "max_tokens", minimum=0, maximum=131_072)
    return CompletionRequest(
        model=model,
        prompts=_prompts(body.get("prompt")),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        n=params.optional_int(body, "n", minimum=1, maximum=MAX_CHOICES) or 1,
        echo=params.optional_bool(body, "echo"),
        stream=stream,
        include_usage=params.include_usage(body, stream=stream),
        stop=params.stop_sequences(body, "stop", limit=4),
        logprobs=params.optional_int(body, "logprobs", minimum=0, maximum=MAX_LOGPROBS),
        exact_length=params.optional_bool(body, "ignore_eos"),
        body=body,
    )


@dataclass(frozen=True, slots=True)
class TextChoice:
    prefix: str  # the echoed prompt, or ""
    reply: ReplyText


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    created: int
    model: str
    choices: tuple[TextChoice, ...]
    prompt_tokens: int
    completion_tokens: int
    logprobs: int | None

    @property
    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


def _decoded(encoding: tiktoken.Encoding, tokens: list[int]) -> str:
    try:
        return encoding.decode(tokens)
    except (KeyError, OverflowError, ValueError) as error:
        bad = next((t for t in tokens if not 0 <= t <= encoding.max_token_value), None)
        detail = f"Invalid token in prompt: {bad}." if bad is not None else "Invalid token in prompt."
        raise ApiError(
            400,
            f"{detail} Minimum value is 0, maximum value is {encoding.max_token_value} (inclusive).",
            param="prompt",
            code="invalid_value",
        ) from error


def synthesize(request: CompletionRequest, writer: ReplyWriter, *, created_s: int) -> Completion:
    rand = request_random(request.body, writer.generator.rng)
    encoding = encoding_for_model(request.model)
    choices = []
    prompt_tokens = 0
    for prompt in request.prompts:
        text = prompt if isinstance(prompt, str) else _decoded(encoding, prompt)
        prompt_tokens += len(prompt) if isinstance(prompt, list) else len(encoding.encode_ordinary(prompt))
        for _ in range(request.n):
            reply = writer.write(
                model=request.model,
                prompt=text,
                max_tokens=request.max_tokens,
                stop=request.stop,
                rand=rand,
                exact=request.exact_length,
            )
            choices.append(TextChoice(text if request.echo else "", reply))
    return Completion(
        id="cmpl-" + writer.generator.token_id(),
        created=created_s,
        model=request.model,
        choices=tuple(choices),
        prompt_tokens=prompt_tokens,
        completion_tokens=sum(choice.reply.tokens for choice in choices),
        logprobs=request.logprobs,
    )


def _logprobs(pieces: Sequence[str], offset: int, top: int) -> dict[str, Any]:
    """The legacy logprobs shape: parallel lists per token."""
    offsets = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    return {
        "tokens": list(pieces),
        "token_logprobs": [-0.25 for _ in pieces],
        "top_logprobs": [{piece: -0.25} if top else {} for piece in pieces],
        "text_offset": offsets,
    }


def _choice(index: int, choice: TextChoice, logprobs: int | None) -> dict[str, Any]:
    return {
        "text": choice.prefix + choice.reply.text,
        "index": index,
        "logprobs": None if logprobs is None else _logprobs(choice.reply.pieces, len(choice.prefix), logprobs),
        "finish_reason": choice.reply.finish,
    }


def completion_body(completion: Completion) -> bytes:
    return orjson.dumps(
        {
            "id": completion.id,
            "object": "text_completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [_choice(i, choice, completion.logprobs) for i, choice in enumerate(completion.choices)],
            "usage": completion.usage,
            "system_fingerprint": system_fingerprint(completion.model),
        }
    )


def stream_events(completion: Completion, *, include_usage: bool) -> list[bytes]:
    """``data:`` chunks of text (the echoed prompt first), a last chunk per choice with
    its ``finish_reason``, the usage chunk when asked, then ``data: [DONE]``."""
    head = {
        "id": completion.id,
        "object": "text_completion",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": system_fingerprint(completion.model),
    }

    def event(index: int, text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    events = []
    for index, choice in enumerate(completion.choices):
        if choice.prefix:
            events.append(event(index, choice.prefix, None))
        events.extend(event(index, piece, None) for piece in choice.reply.pieces)
        events.append(event(index, "", choice.reply.finish))
    if include_usage:
        events.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": completion.usage}) + b"\n\n")
    events.append(DONE_EVENT)
    return events
