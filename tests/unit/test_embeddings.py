import base64
import math
import struct
from typing import Any

import httpx2
import openai
import orjson
import pytest

from sim.embeddings import (
    EmbeddingsRequest,
    embeddings_body,
    parse_embeddings_request,
)
from sim.errors import ApiError
from sim.tokens import CL100K, get_encoding
from tests.openapi import assert_valid

SMALL = "text-embedding-3-small"
LARGE = "text-embedding-3-large"
ADA = "text-embedding-ada-002"
HELLO_WORLD_IDS = [15339, 1917]  # "hello world" in cl100k_base, from tiktoken's own tests


def request(**fields: Any) -> EmbeddingsRequest:
    return parse_embeddings_request({"model": SMALL, "input": "hello world", **fields})


def decode_base64(text: str) -> list[float]:
    raw = base64.b64decode(text, validate=True)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def answer(req: EmbeddingsRequest, *, big_payload: bool = False) -> Any:
    body = orjson.loads(embeddings_body(req, big_payload=big_payload))
    # OpenAI's published schema types every embedding as a float array, base64 answers included (the API
    # itself sends a string there); so validate a base64 answer with its strings decoded.
    decoded = [{**item, "embedding": decode_base64(item["embedding"])} for item in body["data"] if req.base64]
    assert_valid("CreateEmbeddingResponse", {**body, "data": decoded} if req.base64 else body)
    return body


def vectors(**fields: Any) -> list[list[float]]:
    return [item["embedding"] for item in answer(request(**fields))["data"]]


def float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"encoding_format": "base64"},
        {"input": ["one", "two", "three"]},
        {"input": HELLO_WORLD_IDS, "encoding_format": "float"},
        {"input": [[1, 2, 3], [4]], "encoding_format": "base64"},
        {"dimensions": 255},
        {"dimensions": 1, "encoding_format": "base64"},
    ],
)
def test_bodies_match_openais_schema_and_shape(fields: dict[str, Any]) -> None:
    req = request(**fields)
    body = answer(req)
    assert list(body) == ["object", "data", "model", "usage"]
    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == list(range(len(req.token_ids)))
    assert all(list(item) == ["object", "index", "embedding"] for item in body["data"])
    assert all(item["object"] == "embedding" for item in body["data"])
    assert body["model"] == SMALL


@pytest.mark.parametrize(
    ("model", "big_payload", "dimensions", "size"),
    [
        (SMALL, False, None, 1536),
        (ADA, False, None, 1536),
        (LARGE, False, None, 3072),
        ("my-own-embedder", False, None, 1536),
        (SMALL, True, None, 4096),
        (ADA, True, None, 4096),
        (LARGE, True, 1024, 1024),
        (SMALL, False, 512, 512),
    ],
)
def test_vector_sizes(model: str, big_payload: bool, dimensions: int | None, size: int) -> None:
    fields: dict[str, Any] = {"model": model, "input": "hi"}
    if dimensions is not None:
        fields["dimensions"] = dimensions
    body = answer(parse_embeddings_request(fields), big_payload=big_payload)
    assert len(body["data"][0]["embedding"]) == size


@pytest.mark.parametrize("dimensions", [None, 1, 2, 3, 255, 256, 1535])
def test_vectors_have_unit_norm(dimensions: int | None) -> None:
    fields = {} if dimensions is None else {"dimensions": dimensions}
    for vector in vectors(input=["alpha", "beta", "gamma"], **fields):
        assert norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_vectors_are_the_same_in_every_run() -> None:
    # Pinned values: a vector derived from process state (random, hash()) would change between runs.
    vector = vectors()[0]
    assert vector[:4] == [0.033514842, -0.013373054, -0.014496269, -0.03304454]
    assert embeddings_body(request()) == embeddings_body(request())


def test_inputs_and_models_give_distinct_vectors() -> None:
    first, second, third = vectors(input=["a cat", "a dog", "a cat "])
    assert len({tuple(first), tuple(second), tuple(third)}) == 3
    assert abs(cosine(first, second)) < 0.2
    other_model = answer(parse_embeddings_request({"model": LARGE, "input": "a cat", "dimensions": 1536}))
    assert other_model["data"][0]["embedding"] != first


def test_text_and_its_token_ids_embed_alike() -> None:
    assert vectors(input="hello world") == vectors(input=HELLO_WORLD_IDS) == vectors(input=[HELLO_WORLD_IDS])


def test_base64_holds_the_same_float32_values_as_the_float_format() -> None:
    texts = ["one", "two"]
    floats = vectors(input=texts)
    encoded = vectors(input=texts, encoding_format="base64")
    for as_float, as_base64 in zip(floats, encoded, strict=True):
        assert isinstance(as_base64, str)
        assert decode_base64(as_base64) == [float32(x) for x in as_float]
        # Written as the API writes float32 values: no more than 9 significant digits.
        assert all(float(f"{x:.9g}") == x for x in as_float)


@pytest.mark.parametrize("dimensions", [256, 255, 1])
def test_dimensions_are_the_full_vector_cut_and_renormalised(dimensions: int) -> None:
    full = vectors(input="shortened")[0]
    short = vectors(input="shortened", dimensions=dimensions)[0]
    scale = norm(full[:dimensions])
    assert short == pytest.approx([x / scale for x in full[:dimensions]], abs=2e-7)


def test_usage_counts_tokens_exactly() -> None:
    cl100k = get_encoding(CL100K)
    texts = ["hello world", "Embeddings are lists of floats.", "<|endoftext|> counts as text", "日本語のテキスト"]
    expected = sum(len(cl100k.encode_ordinary(text)) for text in texts)
    body = answer(request(input=texts))
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}
    assert answer(request(input="hello world"))["usage"]["prompt_tokens"] == 2
    token_lists = answer(request(input=[[1, 2, 3], [4, 5], [6]]))
    assert token_lists["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


def test_ada_reports_its_versioned_name() -> None:
    assert answer(parse_embeddings_request({"model": ADA, "input": "x"}))["model"] == "text-embedding-ada-002-v2"


INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        ([], "Invalid request body: expected a JSON object.", None, None),
        ({"input": "x"}, "you must provide a model parameter", None, None),
        ({"model": "", "input": "x"}, "you must provide a model parameter", None, None),
        (
            {"model": 3, "input": "x"},
            "Invalid type for 'model': expected a string, but got an integer instead.",
            "model",
            "invalid_type",
        ),
        ({"model": SMALL}, "Missing required parameter: 'input'.", "input", "missing_required_parameter"),
        (
            {"model": SMALL, "input": None},
            "Missing required parameter: 'input'.",
            "input",
            "missing_required_parameter",
        ),
        ({"model": SMALL, "input": ""}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": []}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": ["a", ""]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": ["a", 1]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [[1], "a"]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [[]]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [1, True]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [1, 2.5]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [-1]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": [None]}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": {"text": "a"}}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": 42}, INVALID_INPUT, None, None),
        ({"model": SMALL, "input": ["a"] * 2049}, INVALID_INPUT, None, None),
        (
            {"model": SMALL, "input": "x", "encoding_format": "md5"},
            "Invalid value for 'encoding_format' = md5. Supported values: ['float', 'base64'].",
            None,
            None,
        ),
        (
            {"model": SMALL, "input": "x", "encoding_format": 1},
            "Invalid type for 'encoding_format': expected a string, but got an integer instead.",
            "encoding_format",
            "invalid_type",
        ),
        (
            {"model": ADA, "input": "x", "dimensions": 1536},
            "This model does not support specifying dimensions.",
            None,
            None,
        ),
        (
            {"model": ADA, "input": "x", "dimensions": None},
            "This model does not support specifying dimensions.",
            None,
            None,
        ),
        (
            {"model": SMALL, "input": "x", "dimensions": 0},
            "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "dimensions",
            "integer_below_min_value",
        ),
        (
            {"model": SMALL, "input": "x", "dimensions": 1537},
            "Invalid 'dimensions': integer above maximum value. Expected a value <= 1536, but got 1537 instead.",
            "dimensions",
            "integer_above_max_value",
        ),
        (
            {"model": LARGE, "input": "x", "dimensions": 3073},
            "Invalid 'dimensions': integer above maximum value. Expected a value <= 3072, but got 3073 instead.",
            "dimensions",
            "integer_above_max_value",
        ),
        (
            {"model": SMALL, "input": "x", "dimensions": "256"},
            "Invalid type for 'dimensions': expected an integer, but got a string instead.",
            "dimensions",
            "invalid_type",
        ),
        (
            {"model": SMALL, "input": "x", "user": 7},
            "Invalid type for 'user': expected a string, but got an integer instead.",
            "user",
            "invalid_type",
        ),
        (
            {"model": SMALL, "input": [[1], [2] * 8193]},
            "Invalid 'input[1]': maximum input length is 8192 tokens.",
            None,
            None,
        ),
        (
            {"model": SMALL, "input": [[3] * 8000] * 38},
            "Invalid 'input': maximum request size is 300000 tokens per request.",
            None,
            None,
        ),
    ],
)
def test_errors_are_worded_as_openai_words_them(body: Any, message: str, param: str | None, code: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        parse_embeddings_request(body)
    error = caught.value
    assert (error.status, error.error_type, error.message, error.param, error.code) == (
        400,
        "invalid_request_error",
        message,
        param,
        code,
    )


def test_limits_are_inclusive() -> None:
    assert len(parse_embeddings_request({"model": SMALL, "input": ["a"] * 2048}).token_ids) == 2048
    assert parse_embeddings_request({"model": SMALL, "input": [[7] * 8192]}).prompt_tokens == 8192
    assert parse_embeddings_request({"model": SMALL, "input": "x", "dimensions": 1536}).dimensions == 1536


class Server:
    """A MockTransport handler answering as the simulator would; it keeps the bodies the SDK sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def __call__(self, http_request: httpx2.Request) -> httpx2.Response:
        assert http_request.url.path == "/v1/embeddings"
        body = orjson.loads(http_request.content)
        self.sent.append(body)
        content = embeddings_body(parse_embeddings_request(body))
        return httpx2.Response(200, content=content, headers={"content-type": "application/json"})


def sdk(server: Server) -> openai.OpenAI:
    transport = httpx2.MockTransport(server)
    return openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=httpx2.Client(transport=transport))


def test_official_sdk_decodes_its_default_base64_into_our_floats() -> None:
    server = Server()
    response = sdk(server).embeddings.create(model=SMALL, input=["hello world", "second"])
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    assert server.sent[0]["encoding_format"] == "base64"
    expected = vectors(input=["hello world", "second"])
    assert [item.embedding for item in response.data] == [[float32(x) for x in v] for v in expected]
    assert response.model == SMALL
    assert response.usage.prompt_tokens == response.usage.total_tokens == 3


def test_official_sdk_reads_the_float_format() -> None:
    server = Server()
    response = sdk(server).embeddings.create(model=LARGE, input="hello world", encoding_format="float", dimensions=8)
    assert server.sent[0]["encoding_format"] == "float"
    assert response.data[0].embedding == vectors(model=LARGE, dimensions=8)[0]
    assert response.data[0].index == 0


def test_official_sdk_leaves_explicit_base64_as_text() -> None:
    response = sdk(Server()).embeddings.create(model=SMALL, input="hello world", encoding_format="base64")
    assert response.data[0].embedding == vectors(encoding_format="base64")[0]
