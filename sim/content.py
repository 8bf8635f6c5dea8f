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
    """Makes assistant replies of an exact token length; holds its own random stream."""

    def __init__(self, vocabulary: Vocabulary, *, seed: int | str | None = None) -> None:
        self._vocabulary = vocabulary
        self._random = random.Random(seed)
        self._size = len(vocabulary.lower)

    def natural_length(self) -> int:
        """A realistic reply length in tokens, for requests that set no limit."""
        draw = self._random.lognormvariate(math.log(NATURAL_MEDIAN_TOKENS), NATURAL_SIGMA)
        return max(NATURAL_MIN_TOKENS, min(NATURAL_MAX_TOKENS, round(draw)))

    def pieces(self, tokens: int, *, complete: bool = False) -> list[str]:
        """``tokens`` one-token pieces forming sentences.

        A ``complete`` reply ends with a full stop (a natural end); otherwise the
        last sentence may be cut anywhere, as a reply cut by a token limit is.
        """
        if not complete or tokens < 2:
            return self._pieces(tokens)
        out = self._pieces(tokens - 1)
        if out[-1] == ".":  # extend the last sentence by a word instead of an empty one
            out[-1] = " " + self._vocabulary.lower[int(self._random.random() * self._size)]
        out.append(".")
        return out

    def _pieces(self, tokens: int) -> list[str]:
        rand = self._random
        lower = self._vocabulary.lower
        capital = self._vocabulary.capital
        indexes = [int(rand.random() * self._size) for _ in range(tokens)]
        out: list[str] = []
        append = out.append
        position = 0
        first = True
        while position < tokens:
            words = rand.randint(SENTENCE_WORDS_MIN, SENTENCE_WORDS_MAX)
            start = capital[indexes[position]]
            append(start if first else " " + start)
            first = False
            position += 1
            end = min(tokens, position + words - 1)
            for index in indexes[position:end]:
                append(" " + lower[index])
            position = end
            if position < tokens:
                append(".")
                position += 1
        return out

    def token_id(self) -> str:
        """A fresh base62 identifier of 24 characters, like the provider's ids."""
        value = self._random.getrandbits(143)
        chars = []
        for _ in range(24):
            value, digit = divmod(value, 62)
            chars.append(_BASE62[digit])
        return "".join(chars)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
