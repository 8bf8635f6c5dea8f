import random

import pytest

from sim.content import TextGenerator, build_vocabulary
from sim.replies import BIG_PAYLOAD_TOKENS, ContentPolicy, ReplyWriter, cut_at_stop, seeded_random, tokenized
from sim.tokens import encoding_for_model

GENERATOR = TextGenerator(build_vocabulary(), seed=3)


def count(text: str, model: str = "gpt-4o") -> int:
    return len(encoding_for_model(model).encode_ordinary(text))


def test_echo_repeats_the_prompt_with_its_exact_token_count() -> None:
    writer = ReplyWriter(GENERATOR, ContentPolicy("echo"))
    prompt = "Héllo wörld — 東京 is a city. 🙂 emoji and ünïcode"
    reply = writer.write(model="gpt-4o", prompt=prompt, max_tokens=None)
    assert reply.text == prompt
    assert reply.tokens == count(prompt)
    assert reply.finish == "stop"


def test_configured_text_is_cut_at_max_tokens() -> None:
    text = "one two three four five six seven eight nine ten"
    reply = ReplyWriter(GENERATOR, ContentPolicy("fixed", text=text)).write(model="gpt-4", prompt="", max_tokens=4)
    assert reply.tokens == 4 and reply.finish == "length"
    assert reply.text == "one two three four"
    assert count(reply.text, "gpt-4") == 4


def test_canned_responses_cycle_in_order_per_model_policy() -> None:
    writer = ReplyWriter(
        GENERATOR,
        ContentPolicy("canned", responses=("a", "b", "c")),
        {"m2": ContentPolicy("canned", responses=("x", "y"))},
    )
    said = [writer.write(model="gpt-4o", prompt="", max_tokens=None).text for _ in range(4)]
    other = [writer.write(model="m2", prompt="", max_tokens=None).text for _ in range(3)]
    assert said == ["a", "b", "c", "a"]
    assert other == ["x", "y", "x"]


def test_per_model_policy_wins_over_the_default() -> None:
    writer = ReplyWriter(GENERATOR, ContentPolicy("fixed", text="default"), {"echo-model": ContentPolicy("echo")})
    assert writer.write(model="echo-model", prompt="ping", max_tokens=None).text == "ping"
    assert writer.write(model="gpt-4o", prompt="ping", max_tokens=None).text == "default"


def test_stop_sequence_cuts_before_the_earliest_match_and_recounts() -> None:
    reply = tokenized("alpha beta. gamma delta. epsilon", model="gpt-4o", max_tokens=None)
    cut = cut_at_stop(reply, ["delta", "."], model="gpt-4o")
    assert cut.text == "alpha beta"
    assert cut.finish == "stop" and cut.stop_sequence == "."
    assert cut.tokens == count("alpha beta")


def test_stop_sequence_inside_a_piece_keeps_the_piece_head() -> None:
    reply = tokenized("understanding", model="gpt-4o", max_tokens=None)
    cut = cut_at_stop(reply, ["stand"], model="gpt-4o")
    assert cut.text == "under"
    assert cut.tokens == count("under")


def test_generated_reply_with_a_stop_sequence_that_occurs() -> None:
    writer = ReplyWriter(GENERATOR)
    reply = writer.write(model="gpt-4o", prompt="", max_tokens=200, stop=["."])
    assert "." not in reply.text
    assert reply.finish == "stop" and reply.stop_sequence == "."
    assert reply.tokens == count(reply.text)


def test_big_payload_replies_are_about_ten_kilobytes() -> None:
    writer = ReplyWriter(GENERATOR, ContentPolicy(big_payload=True))
    reply = writer.write(model="gpt-4o", prompt="", max_tokens=None)
    assert reply.tokens == BIG_PAYLOAD_TOKENS and reply.finish == "stop"
    assert 8_000 <= len(reply.text.encode()) <= 14_000
    capped = writer.write(model="gpt-4o", prompt="", max_tokens=10)
    assert capped.tokens == 10 and capped.finish == "length"


def test_a_seed_fixes_the_reply_whatever_the_delivery() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 7}
    writers = [ReplyWriter(TextGenerator(build_vocabulary(), seed=s)) for s in (1, 2)]
    texts = {
        w.write(model="gpt-4o", prompt="hi", max_tokens=None, rand=seeded_random(7, {**body, **extra})).text
        for w in writers
        for extra in ({}, {"stream": True})
    }
    assert len(texts) == 1
    other = writers[0].write(model="gpt-4o", prompt="hi", max_tokens=None, rand=seeded_random(8, body)).text
    assert other not in texts


@pytest.mark.parametrize("seed", range(5))
def test_tokenized_pieces_reassemble_whole_characters(seed: int) -> None:
    rand = random.Random(seed)
    text = "".join(rand.choice(["a", "é", "東", "🙂", " ", "ab", "\n"]) for _ in range(200))
    reply = tokenized(text, model="gpt-4o", max_tokens=None)
    assert reply.text == text
    assert reply.tokens == count(text)
    assert all("\ufffd" not in piece for piece in reply.pieces)
