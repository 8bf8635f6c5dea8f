"""understudy in front of another understudy: passthrough, fallback, record and replay through the whole app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anthropic
import openai
import pytest

from tests.integration.conftest import Server, free_port

UPSTREAM_TEXT = "Said by the upstream."


def config(tmp_path: Path, upstream_url: str, *, dead_first: bool = False) -> Path:
    dead = f"  - {{name: dead, base_url: 'http://127.0.0.1:{free_port()}/v1'}}\n" if dead_first else ""
    path = tmp_path / f"front-{dead_first}.yaml"
    path.write_text(
        "mocker:\n  default_behavior: passthrough\n"
        "upstreams:\n" + dead + f"  - {{name: real, base_url: '{upstream_url}/v1', api_key: sk-upstream}}\n"
    )
    return path


def test_model_listing_passes_through_too(fresh_server: Callable[..., Server], tmp_path: Path) -> None:
    upstream = fresh_server("--models", "upstream-only,claude-upstream", workers=1)
    front = fresh_server("--config", str(config(tmp_path, upstream.url)), workers=1)
    client = openai.OpenAI(base_url=front.url + "/v1", api_key="caller", max_retries=0)
    listed = client.models.with_raw_response.list()
    assert [model.id for model in listed.parse()] == ["upstream-only", "claude-upstream"]
    assert listed.headers["x-understudy-upstream"] == "real"
    assert client.models.retrieve("upstream-only").id == "upstream-only"
    claude = anthropic.Anthropic(base_url=front.url, api_key="caller", max_retries=0)
    page = claude.models.list(limit=1)
    assert [model.id for model in page.data] == ["claude-upstream"]


def test_passthrough_with_fallback_streaming_and_record_then_replay(
    fresh_server: Callable[..., Server], tmp_path: Path
) -> None:
    upstream = fresh_server("--content-mode", "fixed", "--content-text", UPSTREAM_TEXT, workers=1)
    cassettes = tmp_path / "cassettes"
    front = fresh_server("--config", str(config(tmp_path, upstream.url, dead_first=True)), "--record", str(cassettes))
    client = openai.OpenAI(base_url=front.url + "/v1", api_key="caller", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    assert raw.parse().choices[0].message.content == UPSTREAM_TEXT
    assert raw.headers["x-understudy-upstream"] == "real"
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == UPSTREAM_TEXT
    claude = anthropic.Anthropic(base_url=front.url, api_key="caller", max_retries=0)
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "q"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == UPSTREAM_TEXT
    assert len(list(cassettes.iterdir())) == 3  # chat (JSON and stream each its own) and messages

    upstream.process.stop()
    replay_config = tmp_path / "replay.yaml"
    replay_config.write_text("mocker:\n  default_behavior: passthrough\n")
    replaying = fresh_server("--config", str(replay_config), "--replay", str(cassettes), workers=1)
    client = openai.OpenAI(base_url=replaying.url + "/v1", api_key="caller", max_retries=0)
    replayed = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "q"}]
    )
    assert replayed.parse().choices[0].message.content == UPSTREAM_TEXT
    assert replayed.headers["x-understudy-upstream"] == "replay"
    with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "q"}]) as again:
        assert again.get_final_completion().choices[0].message.content == UPSTREAM_TEXT
    with pytest.raises(openai.NotFoundError) as missed:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "never recorded"}])
    assert missed.value.code == "cassette_not_found"


def test_a_rule_error_that_allows_fallbacks_falls_back_to_the_upstreams(
    fresh_server: Callable[..., Server], tmp_path: Path
) -> None:
    upstream = fresh_server("--content-mode", "fixed", "--content-text", UPSTREAM_TEXT, workers=1)
    path = tmp_path / "fallbacks.yaml"
    path.write_text(
        "mocker:\n  rules:\n"
        "    - {name: soft, conditions: {models: [gpt-4o]}, responses: [{type: error, allow_fallbacks: true,"
        " error: {message: down, status_code: 503}}]}\n"
        "    - {name: hard, conditions: {models: [gpt-4o-mini]}, responses: [{type: error, allow_fallbacks: false,"
        " error: {message: down, status_code: 503}}]}\n"
        f"upstreams:\n  - {{name: real, base_url: '{upstream.url}/v1'}}\n"
    )
    front = fresh_server("--config", str(path), workers=1)
    client = openai.OpenAI(base_url=front.url + "/v1", api_key="caller", max_retries=0)
    soft = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    assert soft.choices[0].message.content == UPSTREAM_TEXT
    with pytest.raises(openai.InternalServerError) as hard:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}])
    assert hard.value.status_code == 503
