import base64
import os
import struct
import zlib
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
import orjson
import pytest

from sim import images
from sim.errors import ApiError
from sim.images import ImagesRequest, images_body, parse_images_request, png_for_path, render_png
from sim.tokens import O200K, get_encoding
from tests.openapi import assert_valid

URL_BASE = "http://127.0.0.1:8080"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPT = "a lighthouse at dusk"


def request(**fields: Any) -> ImagesRequest:
    return parse_images_request({"prompt": PROMPT, **fields})


def answer(req: ImagesRequest, *, created_s: int = 1_700_000_000) -> Any:
    body = orjson.loads(images_body(req, created_s=created_s, url_base=URL_BASE))
    assert_valid("ImagesResponse", body)
    return body


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered RGB rows of an 8-bit RGB PNG, checking every CRC on the way."""
    assert data[:8] == PNG_SIGNATURE
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        position += 12 + length
    assert position == len(data)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour_type, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))  # checks Adler-32 too
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows: list[bytes] = []
    previous = bytes(3 * width)
    for y in range(height):
        kind, line = raw[y * stride], raw[y * stride + 1 : (y + 1) * stride]
        assert kind in (0, 2)  # None, or Up: each byte added to the one above it
        if kind == 0:
            row = line
        elif line == bytes(len(line)):  # a row equal to the one above: skip the byte-by-byte sum
            row = previous
        else:
            row = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        rows.append(row)
        previous = row
    return width, height, rows


@pytest.mark.parametrize(("width", "height"), sorted(images.SERVABLE_SIZES))
def test_png_is_valid_at_every_size_a_model_makes(width: int, height: int) -> None:
    got_width, got_height, rows = read_png(render_png(width, height, "3a7bd5"))
    assert (got_width, got_height) == (width, height)
    assert len(set(rows)) == 1
    assert rows[0][:3] == bytes.fromhex("3a7bd5")
    # A gradient, not a flat fill: the right edge is close to half the colour.
    for right, channel in zip(rows[0][-3:], bytes.fromhex("3a7bd5"), strict=True):
        assert abs(right - channel / 2) <= 1


def test_png_of_a_single_row_and_odd_sizes_still_decodes() -> None:
    for width, height in ((1, 1), (3, 1), (7, 5)):
        assert read_png(render_png(width, height, "ff0000"))[:2] == (width, height)


def test_checksum_combination_equals_zlibs() -> None:
    first, second = os.urandom(1000), os.urandom(70_000)
    combined = images._adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({}, "1024x1024"),
        ({"size": "256x256", "n": 3}, "256x256"),
        ({"size": "512x512", "response_format": "b64_json"}, "512x512"),
        ({"model": "dall-e-3", "size": "1792x1024", "quality": "hd", "style": "natural"}, "1792x1024"),
        ({"model": "dall-e-3", "size": "1024x1792", "response_format": "b64_json"}, "1024x1792"),
        ({"model": "gpt-image-1", "size": "1536x1024", "quality": "low"}, "1536x1024"),
        ({"model": "gpt-image-1", "size": "auto", "n": 2}, "1024x1024"),
        ({"model": "gpt-image-1-mini", "size": "1024x1536", "quality": "medium"}, "1024x1536"),
    ],
)
def test_bodies_match_openais_schema_and_carry_images_of_the_asked_size(fields: dict[str, Any], size: str) -> None:
    req = request(**fields)
    body = answer(req)
    assert body["created"] == 1_700_000_000
    assert len(body["data"]) == req.n
    width, height = (int(side) for side in size.split("x"))
    for item in body["data"]:
        if req.response_format == "b64_json":
            assert "url" not in item
            assert read_png(base64.b64decode(item["b64_json"], validate=True))[:2] == (width, height)
        else:
            assert "b64_json" not in item
            url = urlsplit(item["url"])
            assert f"{url.scheme}://{url.netloc}" == URL_BASE
            assert read_png(png_for_path(url.path) or b"")[:2] == (width, height)
        assert ("revised_prompt" in item) == (req.model == "dall-e-3")


def test_dall_e_answers_carry_only_created_and_data() -> None:
    assert list(answer(request())) == ["created", "data"]
    assert list(answer(request(model="dall-e-3"))) == ["created", "data"]


def test_dall_e_3_revises_the_prompt() -> None:
    revised = answer(request(model="dall-e-3"))["data"][0]["revised_prompt"]
    assert revised.startswith(PROMPT) and len(revised) > len(PROMPT)


def test_gpt_image_answers_in_base64_with_usage() -> None:
    body = answer(request(model="gpt-image-1", size="1024x1536", quality="medium", n=2))
    assert all(list(item) == ["b64_json"] for item in body["data"])
    text_tokens = len(get_encoding(O200K).encode_ordinary(PROMPT))
    assert body["usage"] == {
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": 2 * 1584,
        "total_tokens": text_tokens + 2 * 1584,
    }
    assert (body["size"], body["quality"], body["output_format"], body["background"]) == (
        "1024x1536",
        "medium",
        "png",
        "opaque",
    )


def test_gpt_image_resolves_auto_quality_and_size() -> None:
    body = answer(request(model="gpt-image-1", size="auto", quality="auto"))
    assert (body["size"], body["quality"], body["usage"]["output_tokens"]) == ("1024x1024", "high", 4160)


def test_images_are_deterministic_and_differ_within_one_answer() -> None:
    first = answer(request(n=3))["data"]
    assert answer(request(n=3))["data"] == first
    assert len({item["url"] for item in first}) == 3
    other = answer(request(prompt="a lighthouse at dawn"))["data"][0]["url"]
    assert other != first[0]["url"]
    assert first[0]["url"] == URL_BASE + f"/understudy/images/1024x1024/{images.image_colour(PROMPT, 0)}.png"


def test_url_base_with_a_trailing_slash_gives_no_double_slash() -> None:
    body = orjson.loads(images_body(request(), created_s=1, url_base=URL_BASE + "/"))
    assert body["data"][0]["url"].startswith(URL_BASE + "/understudy/images/")


@pytest.mark.parametrize(
    "path",
    [
        "/understudy/images/1024x1024/3a7bd5.png/",
        "/understudy/images/1024x1024/3A7BD5.png",
        "/understudy/images/1024x1024/3a7bd.png",
        "/understudy/images/1024x1024/3a7bd5.jpg",
        "/understudy/images/1000x1000/3a7bd5.png",
        "/understudy/images/99999x99999/3a7bd5.png",
        "/understudy/images/0x0/3a7bd5.png",
        "/understudy/images/1024x1024/../3a7bd5.png",
        "/understudy/images/1024x1024/3a7bd5.png?x=1",
        "/v1/images/1024x1024/3a7bd5.png",
        "",
    ],
)
def test_png_for_path_refuses_anything_but_an_image_url_we_made(path: str) -> None:
    assert png_for_path(path) is None


def test_png_for_path_serves_the_image_the_url_names() -> None:
    png = png_for_path("/understudy/images/1792x1024/00ff80.png")
    assert png == render_png(1792, 1024, "00ff80")
    assert read_png(png or b"")[2][0][:3] == bytes.fromhex("00ff80")


def prompt_of(length: int) -> str:
    return "x" * length


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        ("draw", "Invalid request body: expected a JSON object.", None, None),
        ({}, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"),
        (
            {"prompt": 5},
            "Invalid type for 'prompt': expected a string, but got an integer instead.",
            "prompt",
            "invalid_type",
        ),
        (
            {"prompt": ""},
            "Invalid 'prompt': empty string. Expected a string with minimum length 1, but got an empty string instead.",
            "prompt",
            "empty_string",
        ),
        (
            {"prompt": prompt_of(1001)},
            "Invalid 'prompt': string too long. Expected a string with maximum length 1000, "
            "but got a string with length 1001 instead.",
            "prompt",
            "string_above_max_length",
        ),
        (
            {"prompt": prompt_of(4001), "model": "dall-e-3"},
            "Invalid 'prompt': string too long. Expected a string with maximum length 4000, "
            "but got a string with length 4001 instead.",
            "prompt",
            "string_above_max_length",
        ),
        (
            {"prompt": "p", "model": 2},
            "Invalid type for 'model': expected a string, but got an integer instead.",
            "model",
            "invalid_type",
        ),
        (
            {"prompt": "p", "n": 0},
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "n",
            "integer_below_min_value",
        ),
        (
            {"prompt": "p", "n": 11},
            "Invalid 'n': integer above maximum value. Expected a value <= 10, but got 11 instead.",
            "n",
            "integer_above_max_value",
        ),
        (
            {"prompt": "p", "n": "2"},
            "Invalid type for 'n': expected an integer, but got a string instead.",
            "n",
            "invalid_type",
        ),
        ({"prompt": "p", "model": "dall-e-3", "n": 2}, "You must provide n=1 for this model.", None, None),
        (
            {"prompt": "p", "size": "1792x1024"},
            "Invalid value: '1792x1024'. Supported values are: '256x256', '512x512', and '1024x1024'.",
            "size",
            "invalid_value",
        ),
        (
            {"prompt": "p", "model": "dall-e-3", "size": "256x256"},
            "The size is not supported by this model.",
            None,
            "invalid_size",
        ),
        (
            {"prompt": "p", "model": "gpt-image-1", "size": "1792x1024"},
            "Invalid value: '1792x1024'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.",
            "size",
            "invalid_value",
        ),
        (
            {"prompt": "p", "size": 1024},
            "Invalid type for 'size': expected a string, but got an integer instead.",
            "size",
            "invalid_type",
        ),
        (
            {"prompt": "p", "response_format": "png"},
            "Invalid value: 'png'. Supported values are: 'url' and 'b64_json'.",
            "response_format",
            "invalid_value",
        ),
        (
            {"prompt": "p", "model": "gpt-image-1", "response_format": "b64_json"},
            "Unknown parameter: 'response_format'.",
            "response_format",
            "unknown_parameter",
        ),
        (
            {"prompt": "p", "quality": "ultra"},
            "Invalid value: 'ultra'. Supported values are: 'standard', 'hd', 'low', 'medium', 'high', and 'auto'.",
            "quality",
            "invalid_value",
        ),
        (
            {"prompt": "p", "model": "dall-e-3", "style": "bold"},
            "Invalid value: 'bold'. Supported values are: 'vivid' and 'natural'.",
            "style",
            "invalid_value",
        ),
        (
            {"prompt": "p", "user": []},
            "Invalid type for 'user': expected a string, but got an array instead.",
            "user",
            "invalid_type",
        ),
    ],
)
def test_errors_are_worded_as_openai_words_them(body: Any, message: str, param: str | None, code: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        parse_images_request(body)
    error = caught.value
    assert (error.status, error.error_type, error.message, error.param, error.code) == (
        400,
        "invalid_request_error",
        message,
        param,
        code,
    )


def test_defaults_and_limits() -> None:
    req = parse_images_request({"prompt": prompt_of(1000), "model": None, "n": None, "response_format": None})
    assert (req.model, req.n, req.size, req.response_format) == ("dall-e-2", 1, "1024x1024", "url")
    assert parse_images_request({"prompt": "p", "n": 10}).n == 10
    assert parse_images_request({"prompt": prompt_of(32000), "model": "gpt-image-1"}).response_format == "b64_json"
    assert images.model_family("gpt-image-2") == images.model_family("my-image-model") == images.GPT_IMAGE


def sdk() -> openai.OpenAI:
    def handler(http_request: httpx2.Request) -> httpx2.Response:
        assert http_request.url.path == "/v1/images/generations"
        req = parse_images_request(orjson.loads(http_request.content))
        content = images_body(req, created_s=1_700_000_000, url_base=URL_BASE)
        return httpx2.Response(200, content=content, headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=httpx2.Client(transport=transport))


def test_official_sdk_reads_a_url_answer() -> None:
    response = sdk().images.generate(prompt=PROMPT, model="dall-e-3", size="1024x1792")
    assert response.created == 1_700_000_000
    assert response.data is not None and len(response.data) == 1
    image = response.data[0]
    assert image.b64_json is None and image.revised_prompt
    assert image.url is not None
    assert read_png(png_for_path(urlsplit(image.url).path) or b"")[:2] == (1024, 1792)


def test_official_sdk_reads_a_gpt_image_answer() -> None:
    response = sdk().images.generate(prompt=PROMPT, model="gpt-image-1", n=2, quality="low")
    assert response.data is not None and len(response.data) == 2
    for image in response.data:
        assert image.url is None and image.b64_json is not None
        assert read_png(base64.b64decode(image.b64_json))[:2] == (1024, 1024)
    assert response.usage is not None
    assert response.usage.output_tokens == 2 * 272
    assert response.usage.input_tokens_details.text_tokens == response.usage.input_tokens
    assert (response.size, response.quality, response.output_format) == ("1024x1024", "low", "png")
