"""OpenAI embeddings (``POST /v1/embeddings``): the request read from the wire, the answer as bytes.

Parsing answers with the API's own validation messages. Every input is reduced
to its token ids (strings are encoded with the model's tiktoken encoding), so
``usage`` is exact and a text embeds exactly like its own token ids.

Theory of operation for the vectors: an input's ids and the model name seed a
SHAKE-256 stream; each 16-bit word of it picks one of 4096 angles, and the
vector is a run of (cos, sin) pairs at those angles, all of one radius. Every
pair then has the same length, so a vector of ``d`` (even) components has unit
norm by construction, and a table of the 4096 pairs, already rounded to float32
and already written as JSON text and as little-endian float32 bytes, is all
that rendering needs: a vector is a C-level ``join`` of table entries, with no
arithmetic per component. SHAKE's output is a prefix-stable stream, so the
vector for ``dimensions=d`` is the first ``d`` components of the full vector,
renormalised, as OpenAI's shortened embeddings are. An odd ``d`` cuts a pair in
two; that rare case is scaled component by component and its floats are written
at full double length (the same float32 values, longer text).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from sim.errors import ApiError
from sim.params import invalid_type, missing, optional_int, optional_str, require_object
from sim.tokens import encoding_for_model

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
DEFAULT_DIMENSIONS = 1536
BIG_PAYLOAD_DIMENSIONS = 4096
ENCODING_FORMATS = ("float", "base64")

_NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# The API reports the versioned name of ada-002, and the name asked for otherwise.
_REPORTED_MODEL = {"text-embedding-ada-002": "text-embedding-ada-002-v2"}
_INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."

_ANGLES = 4096
_INDEX_RANGE = 1 << 16
_F32 = struct.Struct("<f")
_F32_PAIR = struct.Struct("<ff")
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """What the simulator needs from an embeddings request."""

    model: str
    # One entry per input: its token ids as little-endian uint32 bytes.
    token_ids: tuple[bytes, ...]
    base64: bool
    dimensions: int | None

    @property
    def prompt_tokens(self) -> int:
        return sum(len(ids) for ids in self.token_ids) // 4


def native_dimensions(model: str) -> int:
    """The vector size ``model`` returns when no ``dimensions`` is asked for."""
    return _NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def _supports_dimensions(model: str) -> bool:
    return not model.startswith("text-embedding-ada")


def _invalid_input() -> ApiError:
    return ApiError(400, _INVALID_INPUT)


def _token_bytes(ids: Sequence[int]) -> bytes:
    """``ids`` as little-endian uint32; ints only (JSON booleans are not token ids)."""
    if set(map(type, ids)) != {int}:
        raise _invalid_input()
    try:
        packed = array("I", ids)
    except OverflowError:  # negative, or beyond any vocabulary
        raise _invalid_input() from None
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _inputs(value: Any) -> list[str | bytes]:
    """The inputs as texts or packed token ids, in the four shapes the API accepts."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        raise _invalid_input()
    elif all(isinstance(item, str) for item in value):
        items = value
    elif not isinstance(value[0], list):
        items = [_token_bytes(value)]
    elif all(isinstance(item, list) and item for item in value):
        items = [_token_bytes(item) for item in value]
    else:
        raise _invalid_input()
    if "" in items:
        raise _invalid_input()
    return items


def _encoding_format_is_base64(body: Mapping[str, Any]) -> bool:
    value = body.get("encoding_format")
    if value is None:
        return False
    if not isinstance(value, str):
        raise invalid_type("encoding_format", "a string", value)
    if value not in ENCODING_FORMATS:
        raise ApiError(400, f"Invalid value for 'encoding_format' = {value}. Supported values: ['float', 'base64'].")
    return value == "base64"


def _dimensions(body: Mapping[str, Any], model: str) -> int | None:
    # ada-002 refuses the key itself, even as null.
    if "dimensions" in body and not _supports_dimensions(model):
        raise ApiError(400, "This model does not support specifying dimensions.")
    return optional_int(body, "dimensions", minimum=1, maximum=native_dimensions(model))


def parse_embeddings_request(body: Any) -> EmbeddingsRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    request = require_object(body)
    model = request.get("model")
    if model is None or model == "":
        raise ApiError(400, "you must provide a model parameter")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    if request.get("input") is None:
        raise missing("input")
    items = _inputs(request["input"])
    base64_format = _encoding_format_is_base64(request)
    dimensions = _dimensions(request, model)
    optional_str(request, "user")
    encode = encoding_for_model(model).encode_ordinary
    token_ids = tuple(item if isinstance(item, bytes) else _token_bytes(encode(item)) for item in items)
    total = 0
    for index, ids in enumerate(token_ids):
        count = len(ids) // 4
        if count > MAX_INPUT_TOKENS:
            raise ApiError(400, f"Invalid 'input[{index}]': maximum input length is {MAX_INPUT_TOKENS} tokens.")
        total += count
    if total > MAX_REQUEST_TOKENS:
        raise ApiError(400, f"Invalid 'input': maximum request size is {MAX_REQUEST_TOKENS} tokens per request.")
    return EmbeddingsRequest(model=model, token_ids=token_ids, base64=base64_format, dimensions=dimensions)


def _float32(value: float) -> float:
    result: float = _F32.unpack(_F32.pack(value))[0]
    return result


def float32_text(value: float) -> str:
    """The shortest decimal that reads back as the float32 ``value``, as the API writes its floats."""
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if _float32(float(text)) == value:
            return repr(float(text))
    return repr(value)


def _unit_pair(index: int) -> tuple[float, float]:
    # Half-step offset: no angle lies on an axis, so no component is exactly 0.
    angle = 2 * math.pi * (index % _ANGLES + 0.5) / _ANGLES
    return math.cos(angle), math.sin(angle)


@dataclass(frozen=True, slots=True)
class _PairTable:
    """Each 16-bit index's pair, scaled for one vector size: as JSON text and as float32 bytes."""

    text: list[bytes]
    binary: list[bytes]


@lru_cache(maxsize=16)  # sizes in use are few; each table costs ~20 ms to build
def _pair_table(size: int) -> _PairTable:
    radius = 1 / math.sqrt(size / 2)
    text = []
    binary = []
    for index in range(_ANGLES):
        x, y = (_float32(radius * c) for c in _unit_pair(index))
        text.append(f"{float32_text(x)},{float32_text(y)}".encode())
        binary.append(_F32_PAIR.pack(x, y))
    # Repeating the list maps every 16-bit word to an angle without a modulo per component.
    repeat = _INDEX_RANGE // _ANGLES
    return _PairTable(text * repeat, binary * repeat)


def _angle_indexes(model: str, token_ids: bytes, pairs: int) -> array[int]:
    seed = model.encode() + b"\x00" + token_ids
    indexes = array("H", hashlib.shake_256(seed).digest(2 * pairs))
    if _BIG_ENDIAN:
        indexes.byteswap()
    return indexes


def _odd_vector(indexes: array[int], size: int) -> array[float]:
    components = [c for index in indexes for c in _unit_pair(index)][:size]
    scale = 1 / math.sqrt(len(indexes) - 1 + components[-1] ** 2)
    return array("f", [c * scale for c in components])


def _render_vector(model: str, token_ids: bytes, size: int, *, base64_format: bool) -> bytes:
    """One vector as the JSON value the API sends: a float array, or a base64 string of float32."""
    indexes = _angle_indexes(model, token_ids, (size + 1) // 2)
    if size % 2 == 0:
        table = _pair_table(size)
        if base64_format:
            return b'"' + base64.b64encode(b"".join([table.binary[index] for index in indexes])) + b'"'
        return b"[" + b",".join([table.text[index] for index in indexes]) + b"]"
    values = _odd_vector(indexes, size)
    if base64_format:
        if _BIG_ENDIAN:
            values.byteswap()
        return b'"' + base64.b64encode(values.tobytes()) + b'"'
    # Exact float32 values written as doubles: longer text than the API's, but no formatting per component.
    return orjson.dumps(values.tolist())


def vector_size(request: EmbeddingsRequest, *, big_payload: bool = False) -> int:
    if request.dimensions is not None:
        return request.dimensions
    return BIG_PAYLOAD_DIMENSIONS if big_payload else native_dimensions(request.model)


def embeddings_body(request: EmbeddingsRequest, *, big_payload: bool = False) -> bytes:
    """The JSON body of the answer; ``big_payload`` sends 4096-component vectors unless ``dimensions`` was given."""
    size = vector_size(request, big_payload=big_payload)
    tokens = request.prompt_tokens
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": orjson.Fragment(
                        _render_vector(request.model, ids, size, base64_format=request.base64)
                    ),
                }
                for index, ids in enumerate(request.token_ids)
            ],
            "model": _REPORTED_MODEL.get(request.model, request.model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
