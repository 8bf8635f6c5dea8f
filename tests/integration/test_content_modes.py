"""Content modes and --big-payload, set on the command line as a user would."""

from __future__ import annotations

import json
from collections.abc import Callable

import anthropic
import openai

from sim.tokens import encoding_for_model
from tests.integration.conftest import Server

PER_MODEL = {"claude-haiku-4-5": {"mode": "echo"}, "gpt-4o-mini": {"mode": "fixed", "text": "Fixed answer, über."}}


def test_canned_echo_and_fixed_modes(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server(
        "--content-mode",
        "canned",
        "--content-responses",
        '["alpha one", "beta two"]',
        "--content-by-model",
        json.dumps(PER_MODEL),
        workers=1,  # canned replies cycle per worker; one worker gives one order
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    said = [
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        .choices[0]
        .message.content
        for _ in range(3)
    ]
    assert said == ["alpha one", "beta two", "alpha one"]
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "beta two"

    fixed = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert fixed.choices[0].message.content == "Fixed answer, über."
    assert fixed.usage is not None
    assert fixed.usage.completion_tokens == len(encoding_for_model("gpt-4o-mini").encode("Fixed answer, über."))

    claude = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    question = "Repeat after me: the quick brown fox."
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": question}]
    ) as echoed:
        assert "".join(echoed.text_stream) == question


def test_big_payload_sizes_replies_and_embeddings(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--big-payload", workers=1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    content = completion.choices[0].message.content or ""
    assert 8_000 <= len(content.encode()) <= 14_000
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(embedding.data[0].embedding) == 4096
