from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.content import NATURAL_MAX_TOKENS, NATURAL_MIN_TOKENS, TextGenerator, Vocabulary, build_vocabulary
from sim.tokens import CL100K, O200K, get_encoding


@cache
def vocabulary() -> Vocabulary:
    return build_vocabulary()


@settings(max_examples=80, deadline=None)
@given(tokens=st.integers(min_value=1, max_value=600), seed=st.integers(), complete=st.booleans())
def test_text_of_n_pieces_is_n_tokens_in_both_encodings(tokens: int, seed: int, complete: bool) -> None:
    # A short tape makes long replies join several slices of it.
    pieces = TextGenerator(vocabulary(), seed=seed, tape_tokens=256).pieces(tokens, complete=complete)
    text = "".join(pieces)
    assert len(pieces) == tokens
    assert len(get_encoding(O200K).encode(text)) == tokens
    assert len(get_encoding(CL100K).encode(text)) == tokens


@settings(max_examples=40, deadline=None)
@given(tokens=st.integers(min_value=2, max_value=300), seed=st.integers())
def test_complete_text_ends_with_a_full_stop(tokens: int, seed: int) -> None:
    text = "".join(TextGenerator(vocabulary(), seed=seed, tape_tokens=256).pieces(tokens, complete=True))
    assert text.endswith(".") and not text.endswith("..")
    assert ". ." not in text


def test_text_reads_as_sentences() -> None:
    text = "".join(TextGenerator(vocabulary(), seed=7).pieces(200))
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    assert len(sentences) >= 200 // 18
    assert all(sentence[0].isupper() for sentence in sentences)


def test_same_seed_same_text_and_different_seeds_differ() -> None:
    def make(seed: int) -> str:
        return "".join(TextGenerator(vocabulary(), seed=seed).pieces(50))

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_natural_lengths_are_varied_and_bounded() -> None:
    generator = TextGenerator(vocabulary(), seed=3)
    lengths = [generator.natural_length() for _ in range(500)]
    assert all(NATURAL_MIN_TOKENS <= n <= NATURAL_MAX_TOKENS for n in lengths)
    assert len(set(lengths)) > 50
    assert 80 <= sorted(lengths)[250] <= 170


def test_ids_are_base62_and_unique() -> None:
    generator = TextGenerator(vocabulary(), seed=3)
    ids = {generator.token_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 24 and i.isalnum() for i in ids)
