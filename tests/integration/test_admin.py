"""The admin API over a real cluster: stats reset, the rules document, the admin token."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.conftest import Server, wait_for

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def test_stats_reset_counts_from_then_on(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    with server.http() as http:
        for _ in range(5):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        wait_for(lambda: server.stats()["total_requests"] == 5, timeout_s=2, what="5 counted")
        assert http.post("/admin/stats/reset").json() == {"ok": True}
        assert server.stats()["total_requests"] == 0
        for _ in range(3):
            http.post("/v1/chat/completions", json=CHAT)
        after = wait_for(lambda: (s := server.stats())["total_requests"] >= 3 and s, timeout_s=2, what="3 counted")
        assert after["total_requests"] == 3
        assert http.get("/admin/stats/reset").headers["allow"] == "POST"


def test_nothing_answered_before_a_reset_counts_after_it(fresh_server: Callable[..., Server]) -> None:
    # Workers that report only every 3 s: most of what they answer is unreported at the reset.
    slow = ("--heartbeat-interval-s", "3", "--heartbeat-timeout-s", "10", "--stats-interval-s", "3")
    server = fresh_server(*slow)

    def chat_on_a_new_connection() -> None:  # new connections spread over both workers
        with server.http() as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200

    for _ in range(12):
        chat_on_a_new_connection()
    with server.http() as http:
        assert http.post("/admin/stats/reset").json() == {"ok": True}
    assert server.stats()["total_requests"] == 0
    for _ in range(4):
        chat_on_a_new_connection()
    after = wait_for(lambda: (s := server.stats())["total_requests"] >= 4 and s, timeout_s=8, what="4 counted")
    assert after["total_requests"] == 4
    assert sum(worker["requests"] for worker in after["workers"]) == 4


def test_rules_document_is_versioned_and_a_bad_one_is_refused(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    with server.http() as http:
        first = http.get("/admin/rules").json()
        assert first == {"version": 1, "mocker": None}
        accepted = http.put("/admin/rules", content=b"mocker:\n  enabled: true\n  rules: []\n")
        assert accepted.status_code == 200 and accepted.json() == {"version": 2}
        assert http.get("/admin/rules").json() == {"version": 2, "mocker": {"enabled": True, "rules": []}}
        refused = http.put("/admin/rules", content=b"[1, 2]")
        assert refused.status_code == 400
        assert refused.json()["errors"] and refused.json()["version"] == 2
        assert http.get("/admin/rules").json()["version"] == 2
        garbled = http.put("/admin/rules", content=b"{not: [valid")
        assert garbled.status_code == 400


def test_admin_token_guards_every_admin_route(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--admin-token", "s3cret", workers=1)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, path in (("GET", "/admin/stats"), ("POST", "/admin/stats/reset"), ("GET", "/admin/rules")):
            assert http.request(method, path).status_code == 401
            assert http.request(method, path, headers={"authorization": "Bearer nope"}).status_code == 401
            assert http.request(method, path, headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/health").status_code == 200


def test_sighup_reloads_the_rules_from_the_config_file(fresh_server: Callable[..., Server], tmp_path: Path) -> None:
    config = tmp_path / "understudy.yaml"
    config.write_text("mocker:\n  enabled: false\n")
    server = fresh_server("--config", str(config), workers=1)
    with server.http() as http:
        assert http.get("/admin/rules").json() == {"version": 1, "mocker": {"enabled": False}}
        config.write_text("mocker:\n  enabled: true\n  rules: []\n")
        server.process.signal(signal.SIGHUP)
        reloaded = wait_for(
            lambda: (r := http.get("/admin/rules").json())["version"] == 2 and r, timeout_s=5, what="version 2"
        )
        assert reloaded["mocker"] == {"enabled": True, "rules": []}
        config.write_text("mocker: [not, a, mapping]\n")
        server.process.signal(signal.SIGHUP)
        assert wait_for(lambda: "rules refused" in server.process.log(), timeout_s=5, what="the refusal logged")
        assert http.get("/admin/rules").json()["version"] == 2
        assert http.get("/health").status_code == 200
        assert server.stats()["workers_alive"] == 1
