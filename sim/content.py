"""Generated assistant text whose token count is known by construction.

Theory of operation: at start-up the English lorem vocabulary that faker ships
is filtered down to words that are exactly one token, with and without a
leading space and capitalised, in both cl100k_base and o200k_base. Text is then
built from pieces that tiktoken's pre-tokenizers split exactly at the piece
boundaries (``"The"``, ``" data"``, ``"."``), so a text of n pieces is n tokens
in either encoding, and a stream can send one piece per chunk, as the real API
sends about one token per chunk. Tests check the count against tiktoken.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from faker.providers.lorem.en_US import Provider as LoremProvider

from sim.tokens import CL100K, O200K, get_encoding

SENTENCE_WORDS_MIN = 5
SENTENCE_WORDS_MAX = 17
# Length of an answer when the request sets no limit: log-normal around a
# median of 120 tokens, the size of a typical short chat answer.
NATURAL_MEDIAN_TOKENS = 120
NATURAL_SIGMA = 0.6
NATURAL_MIN_TOKENS = 8
NATURAL_MAX_TOKENS = 1024
# Random sentences written once per process; replies are slices of it. The
# tape is the same in every process (fixed seed), so a request that carries a
# ``seed`` gets the same reply from any worker.
TAPE_TOKENS = 1 << 18
TAPE_SEED = 20240513


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Single-token words: ``lower[i]`` and ``capital[i]`` are the same word."""

    lower: tuple[str, ...]
    capital: tuple[str, ...]


def _single_token(text: str) -> bool:
    return all(len(get_encoding(name).encode_ordinary(text)) == 1 for name in (CL100K, O200K))


def build_vocabulary(words: Sequence[str] | None = None) -> Vocabulary:
    """Keep the words that stay one token however they stand in a sentence."""
    candidates = sorted(set(words if words is not None else LoremProvider.word_list))
    lower: list[str] = []
    capital: list[str] = []
    for word in candidates:
        if not word.isalpha() or not word.islower():
            continue
        title = word.capitalize()
        forms = (word, " " + word, title, " " + title)
        if all(_single_token(form) for form in forms):
            lower.append(word)
            capital.append(title)
    if len(lower) < 50:
        raise ValueError("vocabulary too small to generate varied text")
    return Vocabulary(tuple(lower), tuple(capital))


class TextGenerator:
    """Makes assistant replies of an exact token length; holds its own random stream.

    At start-up it writes a long tape of random sentences; a reply is a slice of
    the tape that begins at a sentence start, so each request costs one slice
    instead of a random draw per token. Draws use the generator's own random
    stream unless a request brings its own (``rand``), as a seeded request does.
    """

    def __init__(
        self, vocabulary: Vocabulary, *, seed: int | str | None = None, tape_tokens: int = TAPE_TOKENS
    ) -> None:
        self._random = random.Random(seed)
        self._lower = tuple(" " + word for word in vocabulary.lower)
        self._tape, self._starts = self._write_tape(vocabulary, tape_tokens, random.Random(TAPE_SEED))

    @property
    def words(self) -> tuple[str, ...]:
        """The one-token words replies are made of (each with its leading space)."""
        return self._lower

    @property
    def rng(self) -> random.Random:
        """The generator's own random stream, for draws that need no seed."""
        return self._random

    def _write_tape(self, vocabulary: Vocabulary, tokens: int, rand: random.Random) -> tuple[list[str], list[int]]:
        capital = tuple(" " + word for word in vocabulary.capital)
        tape: list[str] = []
        starts: list[int] = []
        while len(tape) < tokens:
            starts.append(len(tape))
            tape.append(rand.choice(capital))
            tape.extend(rand.choices(self._lower, k=rand.randint(SENTENCE_WORDS_MIN, SENTENCE_WORDS_MAX) - 1))
            tape.append(".")
        return tape, starts

    def natural_length(self, rand: random.Random | None = None) -> int:
        """A realistic reply length in tokens, for requests that set no limit."""
        draw = (rand or self._random).lognormvariate(math.log(NATURAL_MEDIAN_TOKENS), NATURAL_SIGMA)
        return max(NATURAL_MIN_TOKENS, min(NATURAL_MAX_TOKENS, round(draw)))

    def pieces(self, tokens: int, *, complete: bool = False, rand: random.Random | None = None) -> list[str]:
        """``tokens`` one-token pieces forming sentences.

        A ``complete`` reply ends with a full stop (a natural end); otherwise the
        last sentence may be cut anywhere, as a reply cut by a token limit is.
        """
        rand = rand or self._random
        if not complete or tokens < 2:
            return self._slice(tokens, rand)
        out = self._slice(tokens - 1, rand)
        if out[-1] == ".":  # extend the last sentence by a word instead of an empty one
            out[-1] = rand.choice(self._lower)
        out.append(".")
        return out

    def _slice(self, tokens: int, rand: random.Random) -> list[str]:
        tape, starts = self._tape, self._starts
        out: list[str] = []
        while len(out) < tokens:
            start = starts[int(rand.random() * len(starts))]
            out += tape[start : start + tokens - len(out)]
        if out:
            out[0] = out[0][1:]  # the reply's first word has no leading space
        return out

    def token_id(self, rand: random.Random | None = None) -> str:
        """A fresh 24-character alphanumeric identifier, like the provider's ids."""
        return base64.b64encode((rand or self._random).randbytes(18)).translate(_ALPHANUMERIC).decode()


# base64 without its two symbols: ids stay alphanumeric, as the provider's are.
_ALPHANUMERIC = bytes.maketrans(b"+/", b"xQ")
