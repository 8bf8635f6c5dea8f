"""``--auth VALUE`` (the Bifrost mock server's ``-auth``): the built-in auth plugin on a real cluster."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest

from tests.integration.conftest import Server, wait_for

SECRET = "s3cret"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def guarded(fresh_server: Callable[..., Server]) -> Server:
    return fresh_server("--auth", f"Bearer {SECRET}")


def test_the_exact_value_passes_and_both_sdks_can_send_it(guarded: Server) -> None:
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key=SECRET, max_retries=0)
    assert client.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[call-overload]
    assert client.models.list().data
    claude = anthropic.Anthropic(base_url=guarded.url, api_key=SECRET, max_retries=0)  # sends x-api-key
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    )
    assert message.content


def test_anything_else_is_a_403_in_each_providers_shape(guarded: Server) -> None:
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert refused.value.response.json()["error"] == {
        "message": "Forbidden: Invalid authentication header 'Authorization'",
        "type": "permission_error",
        "param": None,
        "code": None,
    }
    claude = anthropic.Anthropic(base_url=guarded.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "x"}])
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        missing = http.post("/v1/chat/completions", json=CHAT)
        assert (missing.status_code, missing.json()["error"]["message"]) == (
            403,
            "Forbidden: Missing authentication header 'Authorization'",
        )
        # Auth comes before everything else, as in the mock server: routes, methods and bodies.
        assert http.get("/v1/nowhere").status_code == 403
        assert http.post("/v1/chat/completions", content=b"{not json").status_code == 403
        assert http.get("/v1/nowhere", headers={"authorization": f"Bearer {SECRET}"}).status_code == 404
        # Health and readiness stay open for load balancers and probes.
        assert http.get("/health").status_code == 200
    stats = wait_for(lambda: (s := guarded.stats())["total_requests"] >= 6 and s, timeout_s=5, what="6 counted")
    assert stats["errors_generated"] == 6


def test_an_empty_value_turns_auth_off(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--auth", "", workers=1)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
