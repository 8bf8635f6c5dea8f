"""Per-request cost of the rules: run ``python tests/bench_mocker.py`` (not a pytest test).

For four configurations (no rules, one provider rule, one regex rule, one
faker-template rule) it prints the microseconds ``Mocker.decide`` takes, beside
the microseconds of the whole request inside the app (ASGI call: body read,
JSON, plugin pipeline, rules, synthesis of a 64-token chat completion, reply),
and the share of the rules in it. Baseline: the same request with the rules
section absent. Hypercorn's own cost per request (~400-800 µs here) comes on top.
"""

from __future__ import annotations

import random
import time
import timeit
from collections.abc import Sequence
from typing import Any

import orjson
import trio

from sim.content import TextGenerator, build_vocabulary
from sim.mocker import Mocker, RequestFacts, load_mocker
from sim.ratelimit import Ask, LeaseAnswer
from sim.replies import ReplyWriter
from sim.settings import DEFAULT_MODELS
from sim.stats import RequestCounters
from workers.app import App

FACTS = RequestFacts(
    provider="openai",
    model="gpt-4o",
    message_text="You are a helpful assistant. Can you help me reset my password? " * 4,
    last_user_message="Can you help me reset my password?",
    size_bytes=1200,
    headers={"content-type": "application/json", "x-tenant": "acme"},
)


def _rule(conditions: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    return {"name": "r", "conditions": conditions, "responses": [{"type": "success", "content": content}]}


CASES: dict[str, Mocker] = {
    "no rules": load_mocker({"enabled": True, "default_behavior": "success"}),
    "provider rule": load_mocker({"rules": [_rule({"providers": ["openai"]}, {"message": "Hello!"})]}),
    "regex rule": load_mocker({"rules": [_rule({"message_regex": "(?i)reset.*password"}, {"message": "Hello!"})]}),
    "faker template rule": load_mocker(
        {
            "rules": [
                _rule(
                    {"providers": ["openai"]},
                    {"message_template": "Hi {{faker.first_name}}, {{model}} via {{provider}} ({{faker.uuid}})"},
                )
            ]
        }
    ),
}


class _Link:
    connected = True

    async def query_stats(self, *, timeout_s: float) -> dict[str, Any] | None:
        return None

    async def admin(self, action: str, payload: dict[str, Any], *, timeout_s: float) -> dict[str, Any] | None:
        return None

    async def query_metrics(self, *, timeout_s: float) -> dict[str, Any] | None:
        return None

    async def lease(self, asks: Sequence[Ask], *, timeout_s: float) -> LeaseAnswer | None:
        return None

    def give_back(self, returns: list[tuple[str, float]]) -> None:
        pass


BODY = orjson.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": FACTS.last_user_message}], "max_tokens": 64}
)
SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "headers": [(b"content-type", b"application/json"), (b"x-tenant", b"acme")],
}


async def whole_request_us(mocker: Mocker | None, number: int) -> float:
    app = App(
        worker_id="bench",
        models=DEFAULT_MODELS,
        writer=ReplyWriter(TextGenerator(build_vocabulary(), seed=1)),
        counters=RequestCounters(),
        link=_Link(),
        max_body_bytes=1 << 20,
        mocker=mocker,
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(number):
            await app(SCOPE, receive, send)
        best = min(best, time.perf_counter() - started)
    return best / number * 1e6


def main() -> None:
    rand = random.Random(0)
    baseline = trio.run(whole_request_us, None, 2000)
    print(f"{'rules':22s} {'decide µs':>10s} {'request µs':>11s} {'rules share':>12s}")
    print(f"{'(no rules section)':22s} {'-':>10s} {baseline:11.1f} {'-':>12s}")
    for label, mocker in CASES.items():
        number = 100_000
        best_s = min(timeit.repeat(lambda m=mocker: m.decide(FACTS, rand), number=number, repeat=5))
        decide_us = best_s / number * 1e6
        request_us = trio.run(whole_request_us, mocker, 2000)
        print(f"{label:22s} {decide_us:10.2f} {request_us:11.1f} {decide_us / request_us:12.1%}")
    print("(the faker rule also answers its short templated text instead of 64 generated tokens)")


if __name__ == "__main__":
    main()
