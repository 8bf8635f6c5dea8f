"""Request-parameter checks that answer with the provider's own validation messages.

OpenAI words its 400s in a fixed pattern (``Invalid type for 'x': expected an
integer, but got a string instead.``, code ``invalid_type``); Anthropic uses the
same ``invalid_request_error`` type with shorter messages. Every endpoint's
parser uses these helpers so the wording is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.errors import ApiError


def type_name(value: Any) -> str:
    """How OpenAI names a JSON value's type in its messages."""
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


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def invalid_value(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def array_too_long(param: str, limit: int, length: int) -> ApiError:
    return ApiError(
        400,
        f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, "
        f"but got an array with length {length} instead.",
        param=param,
        code="array_above_max_length",
    )


def require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid request body: expected a JSON object.")
    return body


def optional_int(body: Mapping[str, Any], param: str, *, minimum: int, maximum: int) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
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


def optional_bool(body: Mapping[str, Any], param: str, *, default: bool = False) -> bool:
    value = body.get(param)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def optional_str(body: Mapping[str, Any], param: str) -> str | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def include_usage(body: Mapping[str, Any], *, stream: bool) -> bool:
    """``stream_options.include_usage`` of chat and legacy completions (only with ``stream``)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    if not stream:
        raise invalid_value(
            "stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        )
    return options.get("include_usage") is True


def stop_sequences(body: Mapping[str, Any], param: str, *, limit: int) -> tuple[str, ...]:
    """``stop``: a string or a list of up to ``limit`` strings."""
    value = body.get(param)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list):
        raise invalid_type(param, "a string or an array of strings", value)
    if len(value) > limit:
        raise array_too_long(param, limit, len(value))
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_type(f"{param}[{index}]", "a string", item)
    return tuple(item for item in value if item)
