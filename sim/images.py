"""OpenAI image generation (``POST /v1/images/generations``): the request read from the wire, the answer as bytes.

Parsing answers with the API's own validation messages for each model family
(dall-e-2, dall-e-3, and the GPT image models, which any other name is taken
for). Each image is a horizontal gradient in a colour derived from the prompt
and the image's position, sent as a base64 PNG or as a URL on our own server,
``/understudy/images/{w}x{h}/{colour}.png``, that :func:`png_for_path` answers.

Theory of operation for the PNG: every row of the image is the same, so rows
after the first are written with PNG's "Up" filter as zero bytes. Their deflate
stream depends only on the size, is compressed once per size and cached; the
first row is deflated apart and ends with a full flush, so the two raw deflate
streams concatenate into one valid stream, and the zlib checksum is combined
arithmetically instead of being recomputed over the megabytes of image data.
Encoding a 1024x1024 image then costs about a row's worth of work.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from sim.errors import ApiError
from sim.params import invalid_type, invalid_value, missing, optional_int, optional_str, require_object
from sim.tokens import count_text, encoding_for_model

DALL_E_2 = "dall-e-2"
DALL_E_3 = "dall-e-3"
GPT_IMAGE = "gpt-image"
MAX_IMAGES = 10
SIZES = {
    DALL_E_2: ("256x256", "512x512", "1024x1024"),
    DALL_E_3: ("1024x1024", "1792x1024", "1024x1792"),
    GPT_IMAGE: ("1024x1024", "1024x1536", "1536x1024", "auto"),
}
MAX_PROMPT_CHARS = {DALL_E_2: 1000, DALL_E_3: 4000, GPT_IMAGE: 32000}
RESPONSE_FORMATS = ("url", "b64_json")
QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")
STYLES = ("vivid", "natural")
# Only sizes some model can produce are served, so a URL cannot ask for a huge image.
SERVABLE_SIZES = frozenset(
    tuple(int(side) for side in size.split("x")) for sizes in SIZES.values() for size in sizes if size != "auto"
)
# Output tokens per GPT image, by quality and size, from OpenAI's published table.
_GPT_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
_PATH = re.compile(r"/understudy/images/([0-9]{1,5})x([0-9]{1,5})/([0-9a-f]{6})\.png")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADLER_BASE = 65521
_FILTER_NONE = b"\x00"
_FILTER_UP = b"\x02"


@dataclass(frozen=True, slots=True)
class ImagesRequest:
    """What the simulator needs from an image generation request."""

    prompt: str
    model: str
    family: str
    n: int
    width: int
    height: int
    response_format: str
    quality: str | None
    style: str | None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def model_family(model: str) -> str:
    """Which rules apply to ``model``: unknown names are taken for the newest family, the GPT image models."""
    if model.startswith(DALL_E_3):
        return DALL_E_3
    if model.startswith("dall-e"):
        return DALL_E_2
    return GPT_IMAGE


def _supported(values: Sequence[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _choice(body: Mapping[str, Any], param: str, values: Sequence[str]) -> str | None:
    value = optional_str(body, param)
    if value is not None and value not in values:
        raise invalid_value(param, f"Invalid value: '{value}'. Supported values are: {_supported(values)}.")
    return value


def _prompt(body: Mapping[str, Any], family: str) -> str:
    prompt = body.get("prompt")
    if prompt is None:
        raise missing("prompt")
    if not isinstance(prompt, str):
        raise invalid_type("prompt", "a string", prompt)
    if not prompt:
        raise ApiError(
            400,
            "Invalid 'prompt': empty string. Expected a string with minimum length 1, but got an empty string instead.",
            param="prompt",
            code="empty_string",
        )
    limit = MAX_PROMPT_CHARS[family]
    if len(prompt) > limit:
        raise ApiError(
            400,
            f"Invalid 'prompt': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    return prompt


def _size(body: Mapping[str, Any], family: str) -> tuple[int, int]:
    size = optional_str(body, "size")
    supported = SIZES[family]
    if size is None or (size == "auto" and family == GPT_IMAGE):
        return 1024, 1024
    if size not in supported:
        if family == DALL_E_3:
            raise ApiError(400, "The size is not supported by this model.", code="invalid_size")
        raise invalid_value("size", f"Invalid value: '{size}'. Supported values are: {_supported(supported)}.")
    width, height = size.split("x")
    return int(width), int(height)


def _response_format(body: Mapping[str, Any], family: str) -> str:
    if family == GPT_IMAGE:
        # The GPT image models always answer in base64 and refuse the parameter, whatever its value.
        if body.get("response_format") is not None:
            raise ApiError(
                400, "Unknown parameter: 'response_format'.", param="response_format", code="unknown_parameter"
            )
        return "b64_json"
    return _choice(body, "response_format", RESPONSE_FORMATS) or "url"


def parse_images_request(body: Any) -> ImagesRequest:
    """Validate a decoded JSON body; raise :class:`ApiError` as OpenAI would."""
    request = require_object(body)
    model = optional_str(request, "model") or DALL_E_2
    family = model_family(model)
    prompt = _prompt(request, family)
    n = optional_int(request, "n", minimum=1, maximum=MAX_IMAGES) or 1
    if family == DALL_E_3 and n != 1:
        raise ApiError(400, "You must provide n=1 for this model.")
    width, height = _size(request, family)
    response_format = _response_format(request, family)
    quality = _choice(request, "quality", QUALITIES)
    style = _choice(request, "style", STYLES)
    optional_str(request, "user")
    return ImagesRequest(
        prompt=prompt,
        model=model,
        family=family,
        n=n,
        width=width,
        height=height,
        response_format=response_format,
        quality=quality,
        style=style,
    )


def image_colour(prompt: str, index: int) -> str:
    """The colour of image ``index`` for ``prompt``, as six hex digits: the same in every process."""
    return hashlib.blake2b(f"{index}\x00{prompt}".encode(), digest_size=3).hexdigest()


IMAGE_PATH_PREFIX = "/understudy/images/"


def image_path(width: int, height: int, colour: str) -> str:
    return f"{IMAGE_PATH_PREFIX}{width}x{height}/{colour}.png"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from each one's checksum and the second's length."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


@lru_cache(maxsize=len(SERVABLE_SIZES))
def _repeated_rows(width: int, height: int) -> tuple[bytes, int, int]:
    """Rows 2..height, each equal to the one above: raw deflate stream (final), Adler-32, length."""
    data = (_FILTER_UP + bytes(3 * width)) * (height - 1)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.adler32(data), len(data)


@lru_cache(maxsize=8)
def _ramp(width: int) -> bytes:
    """Each pixel's position from left (0) to right (255)."""
    return bytes(x * 256 // width for x in range(width))


@lru_cache(maxsize=256)
def _fade(value: int) -> bytes:
    """A translation table: ramp position to a channel ``value`` faded to half its brightness at the right."""
    return bytes(value * (512 - step) // 512 for step in range(256))


def _gradient_row(width: int, colour: str) -> bytes:
    ramp = _ramp(width)
    row = bytearray(3 * width)
    for channel, value in enumerate(bytes.fromhex(colour)):
        # translate keeps the per-pixel work in C.
        row[channel::3] = ramp.translate(_fade(value))
    return _FILTER_NONE + bytes(row)


@lru_cache(maxsize=64)
def render_png(width: int, height: int, colour: str) -> bytes:
    """An RGB PNG of ``width`` x ``height``: a horizontal gradient from ``colour`` (six hex digits)."""
    first = _gradient_row(width, colour)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # A full flush ends the stream byte-aligned with no back-references pending, so the cached stream can follow.
    head = compressor.compress(first) + compressor.flush(zlib.Z_FULL_FLUSH)
    if height > 1:
        tail, tail_adler, tail_length = _repeated_rows(width, height)
        checksum = _adler32_combine(zlib.adler32(first), tail_adler, tail_length)
    else:
        tail, checksum = b"\x03\x00", zlib.adler32(first)  # an empty final block
    idat = b"\x78\xda" + head + tail + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_for_path(path: str) -> bytes | None:
    """The PNG that an image URL names, or None when ``path`` is not one (or names a size no model makes)."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    size = int(match[1]), int(match[2])
    if size not in SERVABLE_SIZES:
        return None
    return render_png(size[0], size[1], match[3])


def _revised_prompt(request: ImagesRequest) -> str:
    # dall-e-3 always reports the longer prompt it rewrote the request into.
    style = request.style or "vivid"
    detail = "highly detailed" if request.quality == "hd" else "detailed"
    scene = request.prompt.rstrip(". ")
    return f"{scene}. The scene is rendered in a {style}, {detail} style with a balanced composition."


def _gpt_image_fields(request: ImagesRequest) -> dict[str, Any]:
    quality = request.quality if request.quality in _GPT_IMAGE_TOKENS else "high"
    per_image = _GPT_IMAGE_TOKENS[quality].get(request.size, _GPT_IMAGE_TOKENS[quality]["1024x1024"])
    text_tokens = count_text(encoding_for_model(request.model), request.prompt)
    output_tokens = per_image * request.n
    return {
        "background": "opaque",
        "output_format": "png",
        "size": request.size,
        "quality": quality,
        "usage": {
            "input_tokens": text_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": text_tokens + output_tokens,
        },
    }


def images_body(request: ImagesRequest, *, created_s: int, url_base: str) -> bytes:
    """The JSON body of the answer; URLs point at ``url_base`` (scheme, host and port, no path)."""
    base = url_base.rstrip("/")
    revised = _revised_prompt(request) if request.family == DALL_E_3 else None
    data = []
    for index in range(request.n):
        colour = image_colour(request.prompt, index)
        item: dict[str, Any]
        if request.response_format == "b64_json":
            png = render_png(request.width, request.height, colour)
            item = {"b64_json": orjson.Fragment(b'"' + base64.b64encode(png) + b'"')}
        else:
            item = {"url": base + image_path(request.width, request.height, colour)}
        if revised is not None:
            item["revised_prompt"] = revised
        data.append(item)
    answer: dict[str, Any] = {"created": created_s, "data": data}
    if request.family == GPT_IMAGE:
        answer.update(_gpt_image_fields(request))
    return orjson.dumps(answer)
