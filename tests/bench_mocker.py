"""Per-request cost of ``Mocker.decide``: run ``python tests/bench_mocker.py`` (not a pytest test).

Prints microseconds per request for four configurations: no rules, one
provider rule, one regex rule, one faker-template rule.
"""

from __future__ import annotations

import random
import timeit
from typing import Any

from sim.mocker import Mocker, RequestFacts, load_mocker

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


def main() -> None:
    rand = random.Random(0)
    for label, mocker in CASES.items():
        number = 100_000
        best_s = min(timeit.repeat(lambda m=mocker: m.decide(FACTS, rand), number=number, repeat=5))
        print(f"{label:22s} {best_s / number * 1e6:7.2f} µs/request")


if __name__ == "__main__":
    main()
