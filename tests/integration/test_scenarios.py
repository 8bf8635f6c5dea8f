"""Scenario rules and plugins on a real cluster, configured from a file as users do."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.integration.conftest import Process, Server, wait_for

CONFIG = """
mocker:
  enabled: true
  rules:
    - name: support-faker
      priority: 100
      conditions:
        providers: [openai]
        models: [gpt-4o, "gpt-4.1*"]
        message_regex: "(?i)help"
      responses:
        - type: success
          content:
            message_template: "Hi {{faker.first_name}}, {{model}} via {{provider}}"
            usage: {prompt_tokens: 11, completion_tokens: 7}
            custom_fields: {x_scenario: support}
      latency: {type: fixed, min_ms: 150}
    - name: claude-counted
      priority: 50
      conditions: {providers: [anthropic], headers: {x-usage: "^yes$"}}
      responses:
        - type: success
          content:
            message: "Counted."
            usage: {prompt_tokens: 3, completion_tokens: 2}
            finish_reason: max_tokens
            custom_fields: {x_scenario: claude}
    - name: claude-down
      conditions: {providers: [anthropic]}
      responses:
        - type: error
          allow_fallbacks: false
          error: {message: "Service unavailable", type: overloaded_error, code: "529", status_code: 529}
    - name: tenant
      conditions: {headers: {x-tenant: "^acme$"}}
      responses:
        - type: success
          content: {message: "Hello, ACME."}
plugins:
  - name: tag
    factory: "tests.plugins.example_plugins:create_tagger"
    config: {header: x-tagged, value: "yes"}
  - name: deny
    factory: "tests.plugins.example_plugins:create_denier"
    config: {models: [gpt-3.5-turbo]}
  - name: explode
    factory: "tests.plugins.example_plugins:create_exploding"
    config: {where: pre}
    enabled: false
"""
GREETING = re.compile(r"^Hi \w+, gpt-4o via openai$")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Server:
    from tests.integration.conftest import start_server

    directory = tmp_path_factory.mktemp("scenario")
    config = directory / "understudy.yaml"
    config.write_text(CONFIG)
    server = start_server(directory, "--config", str(config))
    yield server  # type: ignore[misc]
    server.process.stop()


def test_a_faker_template_rule_answers_in_chat_shape_with_its_latency(scenario: Server) -> None:
    client = openai.OpenAI(base_url=scenario.url + "/v1", api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Help me, please"}]
    )
    completion = raw.parse()
    assert GREETING.match(completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert json.loads(raw.content)["x_scenario"] == "support"
    assert raw.elapsed.total_seconds() >= 0.15
    assert raw.headers["x-tagged"] == "yes"
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "help"}], stream=True)
    assert GREETING.match("".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices))
    names = {
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "help"}])
        .choices[0]
        .message.content
        for _ in range(5)
    }
    assert len(names) > 1, "faker values are fresh per request"
    plain = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert not GREETING.match(plain.choices[0].message.content or "")


def test_overrides_reach_every_shape_of_stream(scenario: Server) -> None:
    client = openai.OpenAI(base_url=scenario.url + "/v1", api_key="k", max_retries=0)
    help_me = [{"role": "user", "content": "help"}]
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=help_me, stream=True, stream_options={"include_usage": True}
        )
    )
    assert {chunk.model_extra.get("x_scenario") for chunk in chunks} == {"support"}
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 7)
    with client.responses.stream(model="gpt-4o", input="help") as events:
        final = events.get_final_response()
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert final.model_extra and final.model_extra["x_scenario"] == "support"
    legacy = list(client.completions.create(model="gpt-4o", prompt="help", stream=True))
    assert GREETING.match("".join(chunk.choices[0].text for chunk in legacy if chunk.choices))
    assert {chunk.model_extra.get("x_scenario") for chunk in legacy} == {"support"}

    claude = anthropic.Anthropic(base_url=scenario.url, api_key="k", max_retries=0)
    asked: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "x"}],
        "extra_headers": {"x-usage": "yes"},
    }
    with claude.messages.stream(**asked) as stream:
        streamed = stream.get_final_message()
    whole = claude.messages.create(**asked)
    for message in (streamed, whole):
        assert message.content[0].type == "text" and message.content[0].text == "Counted."
        assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 2)
        assert message.stop_reason == "max_tokens"
    assert whole.model_extra and whole.model_extra["x_scenario"] == "claude"


def test_an_error_rule_answers_in_anthropics_shape(scenario: Server) -> None:
    client = anthropic.Anthropic(base_url=scenario.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 529
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Service unavailable"},
        "request_id": raised.value.response.headers["request-id"],
    }


def test_a_user_plugin_short_circuits_before_the_rules(scenario: Server) -> None:
    client = openai.OpenAI(base_url=scenario.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "help"}])
    assert raised.value.status_code == 403
    assert raised.value.response.json()["error"]["type"] == "permission_error"


def test_get_routes_run_the_pipeline_too(scenario: Server) -> None:
    client = openai.OpenAI(base_url=scenario.url + "/v1", api_key="k", max_retries=0)
    listed = client.models.with_raw_response.list()
    assert listed.headers["x-tagged"] == "yes"  # the user's plugin saw the GET
    assert any(model.id == "gpt-4o" for model in listed.parse())
    # An error rule for a provider covers its whole API, model listing included.
    claude = anthropic.Anthropic(base_url=scenario.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        claude.models.list()
    assert raised.value.status_code == 529


def test_header_rule_on_the_responses_api(scenario: Server) -> None:
    client = openai.OpenAI(base_url=scenario.url + "/v1", api_key="k", max_retries=0)
    response = client.responses.create(model="gpt-4o-mini", input="hi", extra_headers={"x-tenant": "acme"})
    assert response.output_text == "Hello, ACME."


def test_rule_hits_are_counted_cluster_wide(fresh_server: Callable[..., Server], tmp_path: Path) -> None:
    # A cluster of its own: on the shared one, earlier tests' last reports may still be on their way.
    config = tmp_path / "understudy.yaml"
    config.write_text(CONFIG)
    server = fresh_server("--config", str(config))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(4):
            http.post("/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []})
            helped = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "help"}]}
            http.post("/v1/chat/completions", json=helped)
    stats = wait_for(lambda: (s := server.stats())["total_requests"] >= 8 and s, timeout_s=2, what="8 requests counted")
    assert stats["rule_hits"] == {"claude-down": 4, "support-faker": 4}
    assert stats["errors_generated"] == 4
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/admin/stats/reset").json() == {"ok": True}
    assert server.stats()["rule_hits"] == {}


def test_put_rules_switches_every_worker_and_a_bad_document_changes_nothing(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server()
    rules = {"rules": [{"name": "fixed", "responses": [{"type": "success", "content": {"message": "v2 says hi"}}]}]}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        accepted = http.put("/admin/rules", content=json.dumps(rules))
        assert accepted.status_code == 200
        bad = http.put("/admin/rules", content=b"rules:\n  - probability: 7\n")
        assert bad.status_code == 400
        assert "mocker.rules[0].name: is required" in bad.json()["errors"]
        assert "mocker.rules[0].probability: must be between 0 and 1" in bad.json()["errors"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    answered: dict[str, str] = {}

    def every_worker_switched() -> bool:
        with httpx.Client(base_url=server.url, timeout=30) as fresh:  # a new connection may reach the other worker
            response = fresh.post("/v1/chat/completions", json=body)
        answered[response.headers["x-understudy-worker"]] = response.json()["choices"][0]["message"]["content"]
        return len(answered) == 2 and set(answered.values()) == {"v2 says hi"}

    wait_for(every_worker_switched, timeout_s=10, what="both workers answering with the new rules")


def test_serve_refuses_a_bad_config_file_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mocker:\n  rules:\n    - name: x\n      probability: -1\n      responses: [{type: success}]\n")
    process = Process(["serve", "--port", "0", "--config", str(config)], tmp_path / "serve.log").start()
    assert process.wait() == 2
    log = process.log()
    assert "mocker.rules[0].probability: must be between 0 and 1" in log
    assert "mocker.rules[0].responses[0].content" in log


def test_a_raising_plugin_gives_a_counted_500_in_the_providers_shape(
    fresh_server: Callable[..., Server], tmp_path: Path
) -> None:
    config = tmp_path / "explode.yaml"
    factory = "tests.plugins.example_plugins:create_exploding"
    config.write_text(f"plugins:\n  - {{name: explode, factory: '{factory}', config: {{where: pre}}}}\n")
    server = fresh_server("--config", str(config), workers=1)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        chat = http.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
        )
        assert chat.status_code == 500 and chat.json()["error"]["type"] == "server_error"
        claude = http.post(
            "/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert claude.status_code == 500 and claude.json()["error"]["type"] == "api_error"
        assert http.get("/health").status_code == 200
    stats = wait_for(lambda: (s := server.stats())["plugin_failures"] >= 2 and s, timeout_s=2, what="2 failures")
    assert stats["plugin_failures"] == 2 and stats["errors_generated"] == 2
    assert "plugin explode failed in pre_hook" in server.process.log()
