"""OpenAI chat completions: the request read from the wire, the answer as bytes.

Parsing follows the API's own validation messages (type, param and code), so a
client sees the error it would see from OpenAI. Answers are synthesised as the
JSON body of a non-streaming response, or as the list of SSE events of a
streaming one; the worker only writes them out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from sim.content import TextGenerator
from sim.errors import ApiError
from sim.tokens import count_chat_prompt, encoding_for_model

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
MAX_CHOICES = 128
MAX_OUTPUT_TOKENS = 131_072
DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the simulator needs from a chat completion request."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    n: int


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _optional_int(body: Mapping[str, Any], param: str, *, minimum: int, maximum: int) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(param, "an integer", value)
    if value < minimum:
        raise ApiError(
            400,
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if value > maximum:
        raise ApiError(
            400,
            f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, but got {value} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return value


def _check_messages(messages: Any) -> Sequence[Mapping[str, Any]]:
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"messages[{index}].role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES[:-1]) + f", and '{ROLES[-1]}'"
            raise ApiError(
                400,
                f"Invalid value: {orjson.dumps(role).decode()}. Supported values are: {supported}.",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
    return messages


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "Invalid request body: expected a JSON object.",
            param=None,
        )
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(400, "you must provide a model parameter")
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    messages = _check_messages(body.get("messages"))
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options)
        if not stream:
            raise ApiError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        include_usage = options.get("include_usage") is True
    limits = {
        param: _optional_int(body, param, minimum=1, maximum=MAX_OUTPUT_TOKENS)
        for param in ("max_completion_tokens", "max_tokens")
    }
    max_tokens = limits["max_completion_tokens"] or limits["max_tokens"]
    n = _optional_int(body, "n", minimum=1, maximum=MAX_CHOICES) or 1
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        n=n,
    )


@dataclass(frozen=True, slots=True)
class Choice:
    pieces: list[str]
    finish_reason: str


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


def synthesize(request: ChatRequest, generator: TextGenerator, *, created_s: int) -> ChatCompletion:
    """Decide the answer: lengths, text and exact token counts."""
    choices = []
    completion_tokens = 0
    for _ in range(request.n):
        if request.max_tokens is not None:
            length, finish = request.max_tokens, "length"
        else:
            length, finish = generator.natural_length(), "stop"
        choices.append(Choice(generator.pieces(length, complete=finish == "stop"), finish))
        completion_tokens += length
    encoding = encoding_for_model(request.model)
    return ChatCompletion(
        id="chatcmpl-" + generator.token_id(),
        created=created_s,
        model=request.model,
        choices=tuple(choices),
        prompt_tokens=count_chat_prompt(encoding, request.messages),
        completion_tokens=completion_tokens,
    )


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
                    "message": {
                        "role": "assistant",
                        "content": "".join(choice.pieces),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": choice.finish_reason,
                }
                for index, choice in enumerate(completion.choices)
            ],
            "usage": completion.usage,
            "service_tier": "default",
            "system_fingerprint": system_fingerprint(completion.model),
        }
    )


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

    def chunk(index: int, delta: bytes, finish: bytes) -> bytes:
        return b"".join(
            (
                prefix,
                str(index).encode(),
                b',"delta":',
                delta,
                b',"logprobs":null,"finish_reason":',
                finish,
                b"}]",
                tail,
            )
        )

    events = []
    opening = b'{"role":"assistant","content":"","refusal":null}'
    for index in range(len(completion.choices)):
        events.append(chunk(index, opening, b"null"))
    longest = max(len(choice.pieces) for choice in completion.choices)
    for position in range(longest):
        for index, choice in enumerate(completion.choices):
            if position < len(choice.pieces):
                delta = b'{"content":' + orjson.dumps(choice.pieces[position]) + b"}"
                events.append(chunk(index, delta, b"null"))
    for index, choice in enumerate(completion.choices):
        events.append(chunk(index, b"{}", b'"' + choice.finish_reason.encode() + b'"'))
    if include_usage:
        usage = orjson.dumps({"choices": [], "usage": completion.usage})[1:]
        events.append(b"data: " + head + b"," + usage + b"\n\n")
    events.append(DONE_EVENT)
    return events
