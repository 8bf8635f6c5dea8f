"""OpenAI's wire shapes shared by every endpoint: error bodies, the models list."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from sim.errors import ApiError

# OpenAI's published models carry their creation time; a simulated one gets a
# fixed, plausible one so that listings are stable across workers and restarts.
MODEL_CREATED_S = 1_715_367_049


def error_body(error: ApiError) -> bytes:
    """``{"error": {message, type, param, code}}``, the shape every OpenAI error has."""
    return orjson.dumps(
        {
            "error": {
                "message": error.message,
                "type": error.error_type,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def owner_of(model: str) -> str:
    if model.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "dall-e", "whisper", "tts")):
        return "openai" if model.startswith(("o1", "o3", "o4")) else "system"
    if model.startswith("claude"):
        return "anthropic"
    return "understudy"


def model_object(model: str) -> dict[str, object]:
    return {
        "id": model,
        "object": "model",
        "created": MODEL_CREATED_S,
        "owned_by": owner_of(model),
        "root": model,
    }


def models_body(models: Sequence[str]) -> bytes:
    """The body of ``GET /v1/models``; ``root`` is what vLLM's bench reads."""
    return orjson.dumps({"object": "list", "data": [model_object(model) for model in models]})
